"""The spool seam on disk: names, atomic writes, reading back, manifests that cannot escape."""

import json

import pyarrow as pa
import pytest

from logging_backend.errors import SpoolError
from logging_backend.spool import layout


def _table(n=2):
    return pa.table({"request_id": [f"r{i}" for i in range(n)]})


def test_names_are_unique_sortable_and_valid():
    names = [layout.segment_name(now_ns=1_700_000_000_000_000_000 + i, host="my-host/x")
             for i in range(3)]
    assert names == sorted(names) and len(set(names)) == 3
    assert all(layout.is_segment_name(n) and "-my_host_x-" in n for n in names)


def test_write_is_atomic_and_reads_back(tmp_path):
    paths = layout.write_segment(tmp_path, {"stage_events": _table(), "predictions": _table(1)})
    assert {p.parent.name for p in paths} == {"stage_events", "predictions"}
    assert len({p.name for p in paths}) == 1  # one flush, one segment name
    assert not list(tmp_path.rglob("*.tmp"))
    refs = layout.list_segments(tmp_path)
    assert sorted(r.table for r in refs) == ["predictions", "stage_events"]
    assert layout.read_segment(paths[0]) == {"stage_events": _table()}
    assert layout.count_rows(paths[0]) == 2


@pytest.mark.parametrize("name", ["../../x", "a/b.arrow", "..", "", "x.arrow", ".batch-x.json"])
def test_bad_segment_names_are_refused(name):
    with pytest.raises(SpoolError):
        layout.check_name(name)


@pytest.mark.parametrize("table", ["../etc", "Stage", "a/b", "", "x" * 65])
def test_bad_table_names_are_refused(tmp_path, table):
    with pytest.raises(SpoolError):
        layout.write_table_segment(tmp_path, table, _table())


def test_manifest_round_trip_and_hostile_manifest(tmp_path):
    (name,) = [p.name for p in layout.write_segment(tmp_path, {"stage_events": _table()})]
    token = layout.batch_token("stage_events", [name])
    path = layout.write_manifest(tmp_path, "stage_events", token, [name])
    assert layout.manifests(tmp_path, "stage_events") == [path]
    assert layout.read_manifest(path)["segments"] == [name]
    outside = tmp_path.parent / "victim.txt"
    outside.write_text("keep me")
    path.write_text(json.dumps({"token": token, "segments": ["../../victim.txt"]}))
    with pytest.raises(SpoolError, match="invalid spool segment name"):
        layout.read_manifest(path)
    path.write_text("{not json")
    with pytest.raises(SpoolError, match="unreadable"):
        layout.read_manifest(path)
    assert outside.read_text() == "keep me"


def test_unreadable_segment_is_a_spool_error(tmp_path):
    bad = tmp_path / "stage_events" / layout.segment_name()
    bad.parent.mkdir()
    bad.write_bytes(b"not arrow")
    with pytest.raises(SpoolError, match="unreadable"):
        layout.read_table_segment(bad)
    assert layout.count_rows(bad) == 0
