"""Shipper: batching, dedup tokens, manifests, rejection and the disk budget (fake client).

The real engine's handling of the tokens is checked in test_collector.py.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from logging_backend.collector import shipper as sh
from logging_backend.errors import StoreUnavailable
from logging_backend.spool import layout


class FakeClient:
    """Records inserts; ``fail`` decides per call whether (and how) an insert fails."""

    def __init__(self, fail=None):
        self.inserts: list[tuple[str, pa.Table, str]] = []
        self.fail = fail

    def insert_arrow(self, table, data, settings=None):
        if self.fail is not None:
            exc = self.fail(table, data)
            if exc is not None:
                raise exc
        self.inserts.append((table, data, settings["insert_deduplication_token"]))


def events(ids, ts=None, extra=None):
    now = ts or time.time_ns() // 1000
    cols = {
        "ts": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
        "request_id": list(ids),
        "stage": ["preprocess"] * len(ids),
        "wall_ms": [1.0] * len(ids),
    }
    cols.update(extra or {})
    return pa.table(cols)


def tensors(n_values, rid="r"):
    return pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
            "request_id": [rid],
            "stage": ["features"],
            "values_f64": pa.array([[0.5] * n_values], pa.list_(pa.float64())),
        }
    )


def write_many(spool: Path, table: str, count: int, start: int = 0) -> list[Path]:
    return [
        layout.write_table_segment(
            spool, table, events([f"r{i}"]), name=f"{1000 + i:019d}-h-1-{i:08d}.arrow"
        )
        for i in range(start, start + count)
    ]


def test_segment_names_sort_by_time_and_never_repeat(tmp_path):
    names = [layout.segment_name() for _ in range(100)]
    assert len(set(names)) == 100
    assert names == sorted(names)
    path = layout.write_table_segment(tmp_path, "stage_events", events(["a", "b"]))
    assert path.parent == tmp_path / "stage_events"
    assert not list(tmp_path.rglob("*.tmp"))
    assert layout.read_table_segment(path).column("request_id").to_pylist() == ["a", "b"]


def test_many_segments_become_one_insert_with_a_token_from_their_names(tmp_path):
    paths = write_many(tmp_path, "stage_events", 50)
    client = FakeClient()
    rows = sh.Shipper(client, tmp_path).ship_all()
    assert rows == 50
    assert len(client.inserts) == 1
    table, data, token = client.inserts[0]
    assert table == "stagelog.stage_events"
    assert sorted(data.column("request_id").to_pylist()) == sorted(f"r{i}" for i in range(50))
    assert token == layout.batch_token("stage_events", [p.name for p in paths])
    assert list((tmp_path / "stage_events").iterdir()) == []  # segments and manifest gone


def test_batches_are_capped_by_segments_and_bytes(tmp_path):
    write_many(tmp_path, "stage_events", 25)
    client = FakeClient()
    sh.Shipper(client, tmp_path, max_batch_segments=10).ship_all()
    assert [d.num_rows for _, d, _ in client.inserts] == [10, 10, 5]
    write_many(tmp_path, "stage_events", 6)
    size = (tmp_path / "stage_events").iterdir().__next__().stat().st_size
    client = FakeClient()
    sh.Shipper(client, tmp_path, max_batch_bytes=size * 2).ship_all()
    assert [d.num_rows for _, d, _ in client.inserts] == [2, 2, 2]


def test_segments_with_column_subsets_are_concatenated(tmp_path):
    layout.write_table_segment(tmp_path, "stage_events", events(["a"]))
    layout.write_table_segment(tmp_path, "stage_events", events(["b"], extra={"gpu_ms": [2.5]}))
    client = FakeClient()
    sh.Shipper(client, tmp_path).ship_all()
    (_, data, _), = client.inserts
    assert data.column("gpu_ms").to_pylist() == [None, 2.5]


def test_transient_failure_keeps_segments_and_the_retry_reuses_the_batch(tmp_path):
    paths = write_many(tmp_path, "stage_events", 3)
    down = FakeClient(fail=lambda *_: OperationalError("connection refused"))
    ship = sh.Shipper(down, tmp_path)
    with pytest.raises(StoreUnavailable, match="stagelog.stage_events"):
        ship.ship_all()
    assert all(p.exists() for p in paths)
    assert ship.stats.transient_failures == 1
    # More segments arrive while the store is down; the retry ships exactly the first batch
    # (same names, same token), then the rest.
    later = write_many(tmp_path, "stage_events", 2, start=3)
    up = FakeClient()
    ship.client = up
    ship.ship_all()
    assert [t for _, _, t in up.inserts] == [
        layout.batch_token("stage_events", [p.name for p in paths]),
        layout.batch_token("stage_events", [p.name for p in later]),
    ]
    assert ship.pending() == 0


def test_manifest_whose_segments_were_deleted_is_not_shipped_again(tmp_path):
    paths = write_many(tmp_path, "stage_events", 2)
    manifest = layout.manifest_path(tmp_path, "stage_events", "ab" * 16)
    manifest.write_text(json.dumps({"token": "t", "segments": [p.name for p in paths]}))
    paths[0].unlink()  # the crash happened after the insert, while deleting
    client = FakeClient()
    sh.Shipper(client, tmp_path).ship_all()
    assert client.inserts == []
    assert not manifest.exists() and not paths[1].exists()


def test_rejected_segment_is_set_aside_and_counted(tmp_path):
    write_many(tmp_path, "stage_events", 4)

    def fail(table, data):
        if table.endswith("stage_events") and "r2" in data.column("request_id").to_pylist():
            return DatabaseError("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)")
        return None

    client = FakeClient(fail=fail)
    ship = sh.Shipper(client, tmp_path)
    ship.ship_all()
    ship.ship_all()  # the drop record written meanwhile
    shipped = sorted(
        r
        for t, d, _ in client.inserts
        if t == "stagelog.stage_events"
        for r in d.column("request_id").to_pylist()
    )
    assert shipped == ["r0", "r1", "r3"]
    assert len(list((tmp_path / layout.REJECTED_DIR / "stage_events").iterdir())) == 1
    assert ship.stats.dropped_segments["rejected"] == 1
    drops = [d for t, d, _ in client.inserts if t == "stagelog.spool_drops"]
    assert drops and drops[0].column("reason").to_pylist() == ["rejected"]
    assert "TYPE_MISMATCH" in drops[0].column("detail").to_pylist()[0]


def test_budget_drops_oldest_tensor_segments_first_and_counts_them(tmp_path):
    write_many(tmp_path, "stage_events", 3)
    tensor_paths = [layout.write_table_segment(tmp_path, "stage_tensors", tensors(2000, f"t{i}"))
                    for i in range(4)]
    ship = sh.Shipper(FakeClient(), tmp_path)
    total = ship.spool_bytes()
    ship.budget_bytes = total - tensor_paths[0].stat().st_size - 1  # must drop two tensors
    dropped = ship.enforce_budget()
    assert dropped == 2
    assert [p.exists() for p in tensor_paths] == [False, False, True, True]
    assert len(ship.segments("stage_events")) == 3
    assert ship.stats.dropped_segments["budget"] == 2
    assert ship.stats.dropped_rows["stage_tensors"] == 2
    (drop_segment,) = ship.segments(sh.DROPS_TABLE)
    record = layout.read_table_segment(drop_segment).to_pylist()[0]
    assert record["target_table"] == "stage_tensors" and record["segments"] == 2
    assert record["rows"] == 2 and record["reason"] == "budget"


def test_old_tmp_files_of_dead_writers_are_removed_and_counted(tmp_path):
    (tmp_path / "stage_events").mkdir()
    orphan = tmp_path / "stage_events" / "0001-h-1-00000001.arrow.tmp"
    fresh = tmp_path / "stage_events" / "0002-h-1-00000002.arrow.tmp"
    orphan.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - layout.ORPHAN_TMP_AGE_S - 5
    os.utime(orphan, (old, old))
    ship = sh.Shipper(FakeClient(), tmp_path)
    assert ship.enforce_budget() == 1
    assert not orphan.exists() and fresh.exists()
    assert ship.stats.dropped_segments["orphan_tmp"] == 1


def test_unreadable_segment_is_set_aside_and_the_rest_shipped(tmp_path):
    write_many(tmp_path, "stage_events", 2)
    (tmp_path / "stage_events" / "0000000000000000999-h-1-00000009.arrow").write_bytes(b"junk")
    client = FakeClient()
    ship = sh.Shipper(client, tmp_path)
    ship.ship_all()
    ship.ship_all()
    rows = [r for t, d, _ in client.inserts if t == "stagelog.stage_events"
            for r in d.column("request_id").to_pylist()]
    assert sorted(rows) == ["r0", "r1"]
    assert ship.stats.dropped_segments["unreadable"] == 1


def test_segments_arriving_while_shipping_wait_for_the_next_call(tmp_path):
    write_many(tmp_path, "stage_events", 3)
    arrivals = iter(range(100, 200))

    def keep_writing(table, data):
        # A busy stage process: a new segment lands during every insert.
        i = next(arrivals)
        layout.write_table_segment(tmp_path, "stage_events", events([f"new{i}"]),
                         name=f"{5000 + i:019d}-h-1-{i:08d}.arrow")
        return None

    client = FakeClient(fail=keep_writing)
    ship = sh.Shipper(client, tmp_path, max_batch_segments=1)
    assert ship.ship_all() == 3  # returns although segments kept arriving
    assert ship.pending() == 3
