"""The locust load test against the real stack: exits by itself, writes reports, loses nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from running import RunningStack

from loadtest import losscheck
from logging_backend.config import REPO_ROOT

RUN_TIME_S = 20
# Start-up, the generator pool, stop-timeout and report writing fit well inside this; a run that
# does not exit by itself after -t is killed here and fails the test.
EXIT_DEADLINE_S = RUN_TIME_S + 90


def test_headless_run_exits_by_itself_with_reports_and_no_lost_rows(
    stack: RunningStack, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    ledger = reports / "requests.jsonl"
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f", "loadtest/locustfile.py",
        "--config", "loadtest/locust.conf",
        "--host", stack.grpc_url,
        "-u", "4", "-r", "4", "-t", f"{RUN_TIME_S}s",
        "--csv", str(reports / "load"),
        "--html", str(reports / "load.html"),
        "--request-log", str(ledger),
        "--bad-share", "0.1",
        "--batch-size", "4",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=EXIT_DEADLINE_S
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"locust did not exit within {EXIT_DEADLINE_S} s of a {RUN_TIME_S} s run:\n"
            f"{(exc.stderr or b'')[-3000:]!r}"
        ) from exc
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--run-time limit reached" in done.stderr

    with open(reports / "load_stats.csv", newline="") as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(stats["pipeline"]["Request Count"]) > 0
    assert int(stats["pipeline"]["Failure Count"]) == 0
    assert int(stats["pipeline (bad row)"]["Request Count"]) > 0
    assert int(stats["pipeline (bad row)"]["Failure Count"]) == 0  # refused, as it must be
    html = (reports / "load.html").read_text()
    assert "<html" in html.lower() and "pipeline" in html

    sent = [json.loads(line) for line in ledger.read_text().splitlines()]
    total = int(stats["Aggregated"]["Request Count"])
    assert len(sent) == total, "every request locust counted is in the ledger"
    assert any(s["bad"] and not s["ok"] for s in sent) and any(s["ok"] for s in sent)

    assert losscheck.main([str(ledger), "--home", str(stack.home), "--wait", "60"]) == 0


def test_loss_check_fails_for_a_request_the_store_never_saw(
    stack: RunningStack, tmp_path: Path
) -> None:
    ledger = tmp_path / "requests.jsonl"
    never = {"request_id": "never-sent-0", "rows": 2, "bad": False, "ok": True}
    ledger.write_text(json.dumps(never) + "\n")
    assert losscheck.main([str(ledger), "--home", str(stack.home), "--wait", "1"]) == 1
