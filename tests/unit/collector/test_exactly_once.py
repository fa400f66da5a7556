"""Exactly once at the edges, against the real collector and the real chDB engine.

Each case of issue 12, reproduced: a refused segment inside a batch, a full store disk, a
spool disk smaller than the budget, undercounted drops, the wrong rows dropped first. Every
test ends with 0 duplicated rows, drop counts equal to the missing rows, model identity rows
kept, and the collector shipping again by itself. The disk cases need a small tmpfs
(tests/small_disk.py); the same logic runs through fault-injecting layers in test_shipper.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from logging_backend.collector.shipper import Shipper
from logging_backend.errors import SpoolError
from logging_backend.spool import drops as sd
from logging_backend.spool import layout
from tests.small_disk import fill, free_bytes, small_disk
from tests.unit.collector.test_collector import REPO, Running, count, env_for, events

SHIPPED_TIMEOUT_S = 90


def write(spool: Path, table: str, data: pa.Table) -> Path:
    """One segment of ``table`` (a fresh name)."""
    return layout.write_table_segment(spool, table, data)


def wall_as_text(ids):
    """A stage_events segment whose wall_ms is text: the store refuses it (CANNOT_PARSE)."""
    t = events(ids)
    return t.set_column(t.schema.get_field_index("wall_ms"), "wall_ms",
                        pa.array(["fast"] * len(ids)))


def tensors(rid, n_values=2000):
    return pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
            "request_id": [rid],
            "stage": ["features"],
            "direction": ["output"],
            "name": ["FEATURES"],
            "values_f64": pa.array([[float(i) for i in range(n_values)]],
                                   pa.list_(pa.float64())),
        }
    )


def identity(rid):
    return pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
            "model_name": ["mlp"],
            "model_version": [rid],
            "artifact_sha256": ["0" * 64],
        }
    )


def wait_until(predicate, timeout=SHIPPED_TIMEOUT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def dropped(run: Running, table: str, reason: str | None = None) -> int:
    where = f"target_table = '{table}'" + (f" AND reason = '{reason}'" if reason else "")
    return count(run, f"SELECT sum(rows) FROM stagelog.spool_drops WHERE {where}")


def test_a_refused_segment_in_a_batch_duplicates_nothing_and_is_counted(tmp_path):
    """Issue case 1: 600 segments, one refused; the rest of its batch went in twice before."""
    home = tmp_path / "home"
    spool = home / "spool"
    for i in range(600):
        ids = [f"r{i}-{j}" for j in range(6)]
        write(spool, "stage_events", wall_as_text(ids) if i == 300 else events(ids))
    with Running(home) as run:
        wait_until(lambda: run.health()["pending_segments"] == 0, what="spool shipped")
        total = count(run, "SELECT count() FROM stagelog.stage_events")
        unique = count(run, "SELECT uniqExact(request_id) FROM stagelog.stage_events")
        assert (total, unique) == (599 * 6, 599 * 6)
        assert dropped(run, "stage_events", "rejected") == 6
        assert run.health()["stats"]["splits"] >= 1
        assert run.stop() == 0
    assert len(list((spool / ".rejected").iterdir())) == 1


def test_a_full_store_disk_is_retried_never_rejected(tmp_path):
    """Issue case 2: chDB's NOT_ENOUGH_SPACE (243) set 89 valid segments aside before."""
    home = tmp_path / "home"
    spool = home / "spool"
    store_disk = tmp_path / "store"
    with small_disk(store_disk, 48):
        env = {"STAGELOG_DSN": f"chdb://{store_disk / 'clickhouse'}"}
        with Running(home, extra_env=env) as run:
            filler = fill(store_disk)
            for i in range(60):
                write(spool, "stage_events", events([f"full{i}-{j}" for j in range(50)]))
            wait_until(lambda: run.health()["stats"]["transient_failures"] >= 2,
                       what="inserts refused for lack of space")
            assert not (spool / ".rejected").exists()
            assert run.health()["pending_segments"] > 0
            filler.unlink()  # space comes back: the collector goes on by itself
            wait_until(lambda: run.health()["pending_segments"] == 0, what="spool shipped")
            assert count(run, "SELECT count() FROM stagelog.stage_events") == 3000
            assert count(run, "SELECT uniqExact(request_id) FROM stagelog.stage_events") == 3000
            assert count(run, "SELECT count() FROM stagelog.spool_drops") == 0
            assert run.stop() == 0
        assert not (spool / ".rejected").exists()


def test_a_spool_disk_smaller_than_the_budget_drops_by_value_and_counts_every_row(tmp_path):
    """Issue cases 3-5: the spool fills a disk smaller than its budget, the store is away.

    A writer keeps writing flushes (tensors, events, model identity) until its own writes
    fail (counted, like the stage exporter does); then the collector starts: it drops by
    value to keep the free-space floor, writes its manifests, ships, and every row is either
    in the store or counted in spool_drops.
    """
    home = tmp_path / "home"
    spool = home / "spool"
    with small_disk(spool, 8):
        written = {"stage_events": 0, "stage_tensors": 0, "model_versions": 0}
        lost = sd.Unspooled("test writer")
        i = 0
        while lost.rows.get("stage_events", 0) < 50:  # well past full
            flush = {"stage_tensors": tensors(f"q{i}"), "stage_events": events([f"q{i}"]),
                     "model_versions": identity(f"v{i}")}
            for table, data in flush.items():
                try:
                    write(spool, table, data)
                    written[table] += data.num_rows
                except (OSError, SpoolError) as exc:  # ENOSPC: the writer's loss, counted
                    lost.count(table, data.num_rows, exc)
            i += 1
        sent = i
        assert free_bytes(spool) < 64 << 10
        env = {"STAGELOG_SPOOL_MIN_FREE_MB": "1", "STAGELOG_SPOOL_BUDGET_MB": "1024",
               "STAGELOG_DSN": f"chdb://{tmp_path / 'clickhouse'}"}
        with Running(home, extra_env=env) as run:
            # The writer's next flush (space is back) carries its loss counts.
            wait_until(lambda: free_bytes(spool) > 512 << 10, what="the floor restored")
            write(spool, sd.DROPS_TABLE, lost.attach())
            lost.written()
            wait_until(lambda: run.health()["pending_segments"] == 0, what="spool shipped")
            for table in ("stage_events", "stage_tensors"):
                stored = count(run, f"SELECT count() FROM stagelog.{table}")
                unique = count(run, f"SELECT uniqExact(request_id) FROM stagelog.{table}")
                assert stored == unique, table  # nothing twice
                assert stored + dropped(run, table) == sent, table  # every loss counted
            # Tensors went first: more of them dropped than events; identity never.
            assert dropped(run, "stage_tensors", "budget") > 0
            assert dropped(run, "stage_events", "budget") < dropped(run, "stage_tensors",
                                                                    "budget")
            assert count(run, "SELECT count() FROM stagelog.model_versions") == written[
                "model_versions"]
            assert dropped(run, "model_versions", "budget") == 0
            # And it keeps shipping by itself.
            write(spool, "stage_events", events(["after"]))
            wait_until(lambda: count(run, "SELECT countIf(request_id = 'after') "
                                          "FROM stagelog.stage_events") == 1, what="shipping")
            assert run.stop() == 0


def big_events(ids, size=100_000):
    t = events(ids)
    return t.append_column("error", pa.array(["x" * size] * len(ids)))


def test_a_disk_full_under_a_running_collector_never_stops_it(tmp_path):
    """Issue case 3: on a full disk the collector could not write its manifest, for good."""
    home = tmp_path / "home"
    spool = home / "spool"
    with small_disk(spool, 8):
        env = {"STAGELOG_SPOOL_MIN_FREE_MB": "1",
               "STAGELOG_DSN": f"chdb://{tmp_path / 'clickhouse'}"}
        with Running(home, extra_env=env) as run:
            for i in range(5):
                write(spool, "stage_events", events([f"a{i}"]))
            wait_until(lambda: run.health()["pending_segments"] == 0, what="first ship")
            run.proc.send_signal(signal.SIGSTOP)  # segments pile up, then the disk fills
            try:
                for i in range(20):
                    write(spool, "stage_events", big_events([f"b{i}"]))
                filler = fill(spool)  # not ours: the budget cannot free it
                assert free_bytes(spool) == 0
            finally:
                run.proc.send_signal(signal.SIGCONT)
            wait_until(lambda: run.health()["pending_segments"] == 0, what="ship on a full disk")
            assert run.proc.poll() is None
            b_stored = count(run, "SELECT countIf(request_id LIKE 'b%') FROM stagelog.stage_events")
            assert b_stored > 0  # it shipped on the full disk, not only dropped
            assert b_stored + dropped(run, "stage_events", "budget") == 20
            filler.unlink()
            for i in range(20):
                write(spool, "stage_events", events([f"c{i}"]))
            wait_until(lambda: run.health()["pending_segments"] == 0, what="ship after full")
            stored = count(run, "SELECT count() FROM stagelog.stage_events")
            assert stored == count(run, "SELECT uniqExact(request_id) FROM stagelog.stage_events")
            assert stored == 5 + b_stored + 20
            assert run.stop() == 0


def test_stopped_collector_with_a_bisection_in_flight_replays_it(tmp_path):
    """A SIGKILL in the middle of a bisection: the restart sends the same halves, same tokens."""
    home = tmp_path / "home"
    spool = home / "spool"
    for i in range(64):
        ids = [f"k{i}-{j}" for j in range(3)]
        write(spool, "stage_events", wall_as_text(ids) if i in (10, 40) else events(ids))
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=REPO,
                                env=env_for(home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not Shipper(None, spool).manifests() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        (home / "run" / "collector.json").unlink(missing_ok=True)
    with Running(home) as run:
        wait_until(lambda: run.health()["pending_segments"] == 0, what="spool shipped")
        assert count(run, "SELECT count() FROM stagelog.stage_events") == 62 * 3
        assert count(run, "SELECT uniqExact(request_id) FROM stagelog.stage_events") == 62 * 3
        assert dropped(run, "stage_events", "rejected") == 6
        assert run.stop() == 0
