from datetime import datetime, timedelta, timezone

import pytest

from logging_backend import store
from logging_backend.insights import metrics, notes
from logging_backend.insights.notes import NoteError

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)

PLAN = """# Raise the review threshold for card_fraud

- **From:** 2026-11-26T09:00:00Z
- **To:** 2026-11-27
- Tags: thresholds, fraud
Author: risk-team

## Hypothesis

Decline: false positives drop.
To: this line is in a section and is ignored.
"""


def test_parse_when_accepts_now_relative_and_iso():
    assert notes.parse_when("now", NOW) == NOW
    assert notes.parse_when("-90m", NOW) == NOW - timedelta(minutes=90)
    assert notes.parse_when("-2d", NOW) == NOW - timedelta(days=2)
    assert notes.parse_when("2026-11-26T11:30:00+01:00", NOW) == datetime(
        2026, 11, 26, 10, 30, tzinfo=timezone.utc
    )
    assert notes.parse_when("2026-11-20", NOW) == datetime(2026, 11, 20, tzinfo=timezone.utc)
    with pytest.raises(NoteError, match="'yesterday' is not 'now'"):
        notes.parse_when("yesterday", NOW)


def test_make_note_validates_kind_title_range_and_tags():
    note = notes.make_note("event", "Merchant outage", tags="ops, psp,ops", now=NOW)
    assert (note.valid_from, note.valid_to, note.tags) == (NOW, None, ("ops", "psp"))
    with pytest.raises(NoteError, match="'incident' is not one of experiment, event, assumption"):
        notes.make_note("incident", "x", now=NOW)
    with pytest.raises(NoteError, match="non-empty title"):
        notes.make_note("event", "  ", now=NOW)
    with pytest.raises(NoteError, match="ends .* before it starts"):
        notes.make_note("event", "x", valid_from="now", valid_to="-1h", now=NOW)
    with pytest.raises(NoteError, match="whitespace"):
        notes.make_note("event", "x", tags=["a b"], now=NOW)


def test_note_id_is_stable_for_the_same_note():
    a = notes.make_note("assumption", "Labels arrive within 30 days", now=NOW, author="a")
    b = notes.make_note("assumption", "Labels arrive within 30 days", now=NOW, author="b")
    c = notes.make_note("assumption", "Labels arrive within 60 days", now=NOW)
    assert a.id == b.id != c.id


def test_markdown_plan_becomes_an_experiment_note():
    note = notes.parse_plan(PLAN, name="plan", now=NOW)
    assert note.kind == "experiment"
    assert note.title == "Raise the review threshold for card_fraud"
    assert note.valid_from == datetime(2026, 11, 26, 9, tzinfo=timezone.utc)
    assert note.valid_to == datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert note.tags == ("fraud", "thresholds")
    assert note.author == "risk-team"
    assert note.body == PLAN


def test_plan_without_heading_uses_the_file_name(tmp_path):
    path = tmp_path / "drift-test.md"
    path.write_text("Just text.\n")
    note = notes.read_plan(path, now=NOW)
    assert (note.title, note.valid_from, note.valid_to) == ("drift-test", NOW, None)
    with pytest.raises(NoteError, match="does not exist"):
        notes.read_plan(tmp_path / "missing.md")


@pytest.fixture(scope="module")
def query(tmp_path_factory):
    store.close_all()
    client = store.connect(f"chdb://{tmp_path_factory.mktemp('notes') / 'ch'}")
    store.migrate(client)
    yield metrics.client_query(client)
    store.close_all()


def test_notes_are_stored_listed_once_and_found_by_overlap(query):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    plan = notes.parse_plan(PLAN.replace("2026-11-26T09:00:00Z", "-2h").replace("2026-11-27",
                                                                                    "-1h"), now=now)
    event = notes.make_note("event", "PSP outage", body="card network down", valid_from="-30m",
                            tags="ops", now=now)
    for note in (plan, plan, event):  # the repeated add is stored once as far as readers go
        notes.add(query, note)
    listed = notes.list_notes(query)
    assert [r["title"] for r in listed] == [plan.title, "PSP outage"]
    assert listed[1]["valid_to"] is None and listed[1]["tags"] == ["ops"]
    assert [r["title"] for r in notes.list_notes(query, kind="event")] == ["PSP outage"]
    assert [r["title"] for r in notes.list_notes(query, tag="fraud")] == [plan.title]

    def titles(lo, hi):
        return [r["title"] for r in notes.overlapping(query, now + lo, now + hi)]

    assert titles(timedelta(minutes=-90), timedelta(minutes=-80)) == [plan.title]
    assert titles(timedelta(minutes=-20), timedelta(minutes=-10)) == ["PSP outage"]
    assert titles(timedelta(minutes=-3 * 60), timedelta(minutes=-150)) == []
    lines = notes.format_lines(listed)
    assert lines[1].startswith("[event] ") and lines[1].endswith("PSP outage  #ops")
    assert "→ open" in lines[1]
