"""`stagelog report` on the running stack's data, opened in headless Chromium."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest
from feedback_helpers import query_for, wait_for

from clients import feedback as fb
from clients.score import generated_events

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
KEY_ELEMENTS = (
    "latency-chart", "waterfall-chart", "prediction-mix-chart", "decision-mix-chart",
    "action-mix-chart", "drift-chart", "accuracy-table", "latency-table", "notes-list",
)


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is missing: run scripts/install_chromium.sh (make test does)"
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def png_distinct_bytes(path: Path) -> int:
    """Distinct byte values in the decoded pixel rows (a blank page has very few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


@pytest.fixture(scope="module")
def report_page(stack, tmp_path_factory):
    """Traffic, feedback and a note in the stack, then `stagelog report` through the CLI."""
    rid = f"report-{uuid.uuid4().hex[:8]}"
    result = stack.score(generated_events(16, seed=41), request_id=rid)
    fb.send_reports(stack.client, [fb.FeedbackReport(rid, row, "action", decision)
                                   for row, decision in enumerate(result.decisions)])
    fb.send_reports(stack.client, [fb.FeedbackReport(rid, row, "label", cls)
                                   for row, cls in enumerate(result.classes)])
    wait_for(query_for(stack), "SELECT count() AS n FROM stagelog.labels_latest "
             "WHERE request_id = {r:String}", {"r": rid}, lambda r: int(r[0]["n"]) == 16)
    wait_for(query_for(stack), "SELECT count() AS n FROM stagelog.stage_events "
             "WHERE request_id = {r:String}", {"r": rid}, lambda r: int(r[0]["n"]) >= 6)
    out = tmp_path_factory.mktemp("report") / "report.html"
    home = ["--home", str(stack.home)]
    env_cli = [sys.executable, "-m", "logging_backend.stack.cli"]
    note = subprocess.run(
        [*env_cli, "note", "add", "--kind", "event", "--title", "Report test traffic",
         "--from", "-10m", "--tags", "test", *home],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert note.returncode == 0, note.stderr
    made = subprocess.run(
        [*env_cli, "report", "--out", str(out), "--request-id", rid, *home],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert made.returncode == 0, made.stderr
    return out, rid


def test_report_renders_in_headless_chromium(report_page, tmp_path):
    page, rid = report_page
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for element in KEY_ELEMENTS:
        assert f'id="{element}"' in dom.stdout, element
    # The waterfall shows the chosen request's stages, the notes list the note just added.
    assert rid in dom.stdout
    for stage in ("preprocess", "features", "mlp", "forest", "logreg", "aggregate"):
        assert f'data-stage="{stage}"' in dom.stdout, stage
    assert "Report test traffic" in dom.stdout
    assert 'class="series"' in dom.stdout and 'class="share"' in dom.stdout

    shot = tmp_path / "report.png"
    taken = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400",
                         page.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert png_distinct_bytes(shot) > 64


def test_metrics_command_prints_every_section_and_the_note(report_page, stack):
    done = subprocess.run(
        [sys.executable, "-m", "logging_backend.stack.cli", "metrics", "--home", str(stack.home)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    for fragment in ("online accuracy", "member agreement", "decision mix",
                     "decisions vs. reported actions", "latency per stage", "feature drift",
                     "notes overlapping this window", "Report test traffic"):
        assert fragment in done.stdout, fragment
