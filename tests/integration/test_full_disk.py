"""A full spool disk under the real stack: rows lost = rows counted, 0 twice, identity kept.

Issue 12 against real Triton stubs, the real collector and chDB. The spool is a small tmpfs
(tests/small_disk.py; skipped where mounting is refused: the unit fault layers cover the same
logic). The stack starts without a collector, so the model identity rows of every stage wait
in the spool with everything else; requests fill the disk until the stubs' own writes fail;
then a collector starts on the full disk, drops by value to its free-space floor, ships, and
goes on shipping by itself once space is back.
"""

from __future__ import annotations

import signal
import time
import uuid

from running import start_stack
from test_logging import MODELS, STAGES, _score_many, _start_collector, _stop_pid, scalar

from logging_backend.collector import service as collector
from logging_backend.stack import launcher
from tests.small_disk import fill, free_bytes, small_disk

SPOOL_MB = 24
OURS_MB = 6  # what the filler leaves to the stack
FLOOR_MB = 2
DISTINCT = {"stage_events": "request_id, stage", "predictions": "request_id, model, row"}


def _dropped(settings, table: str, reason: str | None = None) -> int:
    where = "target_table = {t:String}" + ("" if reason is None else " AND reason = {r:String}")
    return scalar(settings, f"SELECT sum(rows) FROM stagelog.spool_drops WHERE {where}",
                  t=table, r=reason or "")


def _count(settings, table: str, ids: list[str]) -> int:
    return scalar(settings, f"SELECT count() FROM stagelog.{table} "
                  "WHERE request_id IN {ids:Array(String)}", ids=ids)


def test_a_full_spool_disk_loses_only_counted_rows_and_recovers(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("stagelog-full-disk")
    monkeypatch.setenv("STAGELOG_SPOOL_MIN_FREE_MB", str(FLOOR_MB))
    # drops are summed per table, whatever the request: no supervisor probes beside our traffic
    monkeypatch.setenv("STAGELOG_SUPERVISE", "off")
    with small_disk(home / "spool", SPOOL_MB):
        running = None
        proc = None
        try:
            running = start_stack(home, collector=False)
            settings = running.settings
            fill(settings.spool_dir, leave_bytes=OURS_MB << 20)  # not ours: the rest is
            prefix = f"full-{uuid.uuid4().hex[:6]}"
            ids = []
            # the stages write until half the floor is left, then count what they cannot write
            while free_bytes(settings.spool_dir) > (FLOOR_MB << 19) + (512 << 10) or len(ids) < 400:
                ids += _score_many(running, f"{prefix}-{len(ids)}", 50)
                assert len(ids) < 5000, "the stages never filled the disk"
            ids += _score_many(running, f"{prefix}-{len(ids)}", 100)  # on a (nearly) full disk
            assert running.alive()  # serving never waits for logging
            proc = _start_collector(settings)  # on the full disk: below its floor
            deadline = time.monotonic() + 120
            while _dropped(settings, "stage_tensors", "budget") == 0:  # tensors go first
                assert time.monotonic() < deadline, "the budget dropped nothing below its floor"
                time.sleep(0.2)
            (settings.spool_dir / "filler.bin").unlink()  # space comes back
            after = _score_many(running, f"{prefix}-after", 30)  # every stub flushes again
            expected = {"stage_events": len(STAGES), "predictions": len(MODELS)}
            for table, per_request in expected.items():
                want = per_request * len(ids + after)
                # wait until every row is either in the store or counted lost
                deadline = time.monotonic() + 120
                while True:
                    got = _count(settings, table, ids + after) + _dropped(settings, table)
                    if got >= want or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert got == want, (table, got, want)
                assert scalar(settings, f"SELECT count() - uniqExact({DISTINCT[table]}) "
                              f"FROM stagelog.{table} WHERE request_id IN {{ids:Array(String)}}",
                              ids=ids + after) == 0, table
            assert _dropped(settings, "stage_events", "writer_failed") > 0  # the disk was full
            assert _dropped(settings, "stage_tensors") > 0
            assert _dropped(settings, "model_versions") == 0
            assert scalar(settings, "SELECT uniqExact(model_name) FROM stagelog.model_versions"
                          ) >= len(set(STAGES))
            print("counts:", len(ids), "requests +", len(after), "after;",  # -s shows them
                  {t: (_count(settings, t, ids + after), {r: _dropped(settings, t, r) for r in (
                      "writer_failed", "budget", "rejected")}) for t in (
                      "stage_events", "predictions", "stage_tensors")},
                  "model_versions dropped", _dropped(settings, "model_versions"))
            # Nothing after the fault was lost: the collector is back to shipping by itself.
            assert _count(settings, "stage_events", after) == len(STAGES) * len(after)
        finally:
            if proc is not None:
                info = collector.read_info(home)
                if info is not None:
                    _stop_pid(int(info["pid"]), signal.SIGTERM)
            if running is not None:
                launcher.down(running.settings)
