"""`stagelog note`, `metrics`, `report` and `baseline load` against a home without a stack."""

import os
import subprocess
import sys
import uuid

import pytest

from clients import feedback as fb


def stagelog(home, *args, check=True):
    env = {**os.environ, "STAGELOG_HOME": str(home)}
    env.pop("STAGELOG_DSN", None)
    done = subprocess.run([sys.executable, "-m", "logging_backend.stack.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_notes_metrics_report_and_baseline_on_an_idle_home(tmp_path):
    home = tmp_path / "home"
    plan = tmp_path / "plan.md"
    plan.write_text("# Threshold test\n\nFrom: 2026-11-26T08:00:00Z\nTo: 2026-11-26T12:00:00Z\n"
                    "Tags: thresholds\n\n## Scope\nreview_at 0.3 -> 0.35\n")
    note_id = stagelog(home, "note", "add", "--kind", "assumption", "--title",
                       "Labels arrive within 30 days", "--tags", "labels").stdout.strip()
    uuid.UUID(note_id)
    stagelog(home, "note", "import", str(plan))
    stagelog(home, "note", "import", str(plan))  # the same plan again: still one note
    listed = stagelog(home, "note", "list").stdout
    assert listed.count("Threshold test") == 1
    assert "[experiment] 2026-11-26 08:00:00 → 2026-11-26 12:00:00  Threshold test" in listed
    assert "[assumption]" in listed and "#labels" in listed
    only = stagelog(home, "note", "list", "--kind", "experiment", "--body").stdout
    assert "Labels arrive" not in only and "review_at 0.3 -> 0.35" in only

    bad = stagelog(home, "note", "add", "--kind", "rumour", "--title", "x", check=False)
    assert bad.returncode == 1 and "'rumour' is not one of experiment, event, assumption" in (
        bad.stderr)
    bad = stagelog(home, "note", "add", "--kind", "event", "--title", "x", "--from", "soon",
                   check=False)
    assert bad.returncode == 1 and "'soon' is not 'now'" in bad.stderr

    assert "no predictions logged yet" in stagelog(home, "metrics").stdout
    loaded = stagelog(home, "baseline", "load").stdout
    assert "loaded the baseline of 45 features" in loaded
    out = tmp_path / "report.html"
    stagelog(home, "report", "--out", str(out))
    page = out.read_text()
    assert "no traffic logged yet" in page and 'id="drift-chart"' in page


def test_feedback_jsonl_lines_become_reports():
    lines = [
        '{"request_id": "r", "row": 0, "label": "legit"}',
        "",
        '{"request_id": "r", "row": 1, "action": "decline", "executed": false}',
    ]
    assert fb.reports_from_lines(lines) == [
        fb.FeedbackReport("r", 0, "label", "legit"),
        fb.FeedbackReport("r", 1, "action", "decline", {"executed": False}),
    ]
    with pytest.raises(ValueError, match="line 1: expected"):
        fb.reports_from_lines(['{"row": 0}'])
