"""The spool seam on disk: names, atomic writes, reading back, manifests that cannot escape."""

import json

import pyarrow as pa
import pytest

from logging_backend.errors import SpoolError
from logging_backend.spool import layout


def _table(n=2):
    return pa.table({"request_id": [f"r{i}" for i in range(n)]})


def test_names_are_unique_sortable_and_valid():
    names = [
        layout.segment_name(now_ns=1_700_000_000_000_000_000 + i, host="my-host/x")
        for i in range(3)
    ]
    assert names == sorted(names) and len(set(names)) == 3
    assert all(layout.is_segment_name(n) and "-my_host_x-" in n for n in names)


def test_write_is_atomic_and_reads_back(tmp_path):
    paths = layout.write_segment(
        tmp_path, {"stage_events": _table(), "predictions": _table(1)}, fmt="v1"
    )
    assert {p.parent.name for p in paths} == {"stage_events", "predictions"}
    assert len({p.name for p in paths}) == 1  # one flush, one segment name
    assert not list(tmp_path.rglob("*.tmp"))
    refs = layout.list_segments(tmp_path)
    assert sorted(r.table for r in refs) == ["predictions", "stage_events"]
    assert layout.read_segment(paths[0]) == {"stage_events": _table()}
    assert layout.count_rows(paths[0]) == 2


def test_a_flush_is_one_v2_file_listed_read_and_split_for_table_shippers(tmp_path):
    tables = {"stage_events": _table(), "predictions": _table(1)}
    (path,) = layout.write_segment(tmp_path, tables)
    assert path.parent == tmp_path and path.name.endswith(".seg")
    assert not list(tmp_path.rglob("*.tmp"))
    (ref,) = layout.list_segments(tmp_path)
    assert ref.path == path and ref.table == "" and ref.size == path.stat().st_size
    assert layout.segment_tables(path) == ["stage_events", "predictions"]
    assert layout.read_segment(path) == tables and layout.count_rows(path) == 3
    assert layout.check_name(path.name) == path.name
    assert layout.split_containers(tmp_path) == 1 and not path.exists()
    refs = layout.list_segments(tmp_path)
    assert sorted(r.table for r in refs) == ["predictions", "stage_events"]
    assert {r.name for r in refs} == {path.name.replace(".seg", ".arrow")}
    assert layout.read_segment(tmp_path / "predictions" / refs[0].name) == {
        "predictions": _table(1)
    }


def test_a_v2_segment_with_a_bad_table_name_is_refused(tmp_path):
    with pytest.raises(SpoolError):
        layout.write_segment(tmp_path, {"../x": _table()})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["../../x", "a/b.arrow", "..", "", "x.arrow", ".batch-x.json"])
def test_bad_segment_names_are_refused(name):
    with pytest.raises(SpoolError):
        layout.check_name(name)


@pytest.mark.parametrize("table", ["../etc", "Stage", "a/b", "", "x" * 65])
def test_bad_table_names_are_refused(tmp_path, table):
    with pytest.raises(SpoolError):
        layout.write_table_segment(tmp_path, table, _table())


def test_manifest_round_trip_and_hostile_manifest(tmp_path):
    (name,) = [p.name for p in layout.write_segment(tmp_path, {"stage_events": _table()}, fmt="v1")]
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
