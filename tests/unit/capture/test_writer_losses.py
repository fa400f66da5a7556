"""A stage process that cannot spool (its disk is full) counts every row it lost, exactly.

Issue 12 case 4: on a full disk the store held six "1 records dropped" rows while the stages
lost about 2,500 records each. The real stage logger and exporter run here; the disk is a
fault-injecting file layer (pyarrow's output file raising ENOSPC) and, where the machine
allows it, a real 1 MiB tmpfs.
"""

from __future__ import annotations

import errno
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from logging_backend.capture.stage import StageLog
from logging_backend.spool import drops as sd
from logging_backend.spool import layout
from tests.small_disk import small_disk


def stage_log(home: Path, tmp_path: Path, monkeypatch, min_free_mb: int = 0) -> StageLog:
    monkeypatch.setenv("STAGELOG_HOME", str(home))
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")
    monkeypatch.setenv("STAGELOG_SPOOL_MIN_FREE_MB", str(min_free_mb))
    monkeypatch.delenv("STAGELOG_LOGGING", raising=False)
    (tmp_path / "repo" / "features" / "1").mkdir(parents=True, exist_ok=True)
    return StageLog.from_triton_args(
        {
            "model_name": "features",
            "model_version": "1",
            "model_repository": str(tmp_path / "repo" / "features"),
            "model_config": json.dumps({"parameters": {}}),
        }
    )


def requests(log: StageLog, start: int, n: int, width: int = 8) -> None:
    for i in range(start, start + n):
        with log.request(f"r{i}", rows=2) as rec:
            rec.input("PROCESSED", np.zeros((2, width), np.float32))
            rec.output("FEATURES", np.full((2, width), i, dtype=np.float32))
            rec.predictions("mlp", np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]))
        log.force_flush()


def spooled(spool: Path) -> tuple[Counter, Counter]:
    """Rows per table in the spool, and rows counted lost per table (spool_drops)."""
    rows: Counter = Counter()
    lost: Counter = Counter()
    for ref in layout.list_segments(spool):
        for table, data in layout.read_segment(ref.path).items():
            if table == sd.DROPS_TABLE:
                for row in data.to_pylist():
                    assert row["reason"] == sd.WRITER_FAILED
                    lost[row["target_table"]] += row["rows"]
            else:
                rows[table] += data.num_rows
    return rows, lost


class FullDisk:
    """pyarrow's OSFile (v1 files) and ``open`` (v2 files) raising ENOSPC while ``full``."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0
        self._real = pa.OSFile

    def __call__(self, path: str, mode: str = "rb"):
        if self.full and "w" in mode:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return self._real(path, mode)

    def open(self, path, mode="r", *args, **kwargs):
        if self.full and "w" in mode:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return open(path, mode, *args, **kwargs)


def test_rows_a_stage_could_not_spool_are_counted_once_each(tmp_path, monkeypatch):
    disk = FullDisk()
    monkeypatch.setattr(layout.pa, "OSFile", disk)
    monkeypatch.setattr(layout, "open", disk.open, raising=False)
    log = stage_log(tmp_path / "home", tmp_path, monkeypatch)
    try:
        requests(log, 0, 3)
        disk.full = True
        requests(log, 3, 40)
        disk.full = False
        requests(log, 43, 2)  # space is back: this flush carries the loss counts
    finally:
        log.close()
    assert disk.refused > 0
    rows, lost = spooled(tmp_path / "home" / "spool")
    assert rows["stage_events"] + lost["stage_events"] == 45
    assert rows["predictions"] + lost["predictions"] == 45 * 2
    assert lost["stage_events"] == 40  # every lost row counted, not "1 records dropped"
    assert lost["stage_tensors"] > 0


def test_a_stage_on_a_really_full_tmpfs_counts_what_it_lost(tmp_path, monkeypatch):
    home = tmp_path / "home"
    shipped: Counter = Counter()
    with small_disk(home, 1):
        log = stage_log(home, tmp_path, monkeypatch)
        try:
            requests(log, 0, 400, width=512)  # ~4 KB of tensors each: the disk fills
            filled = list(layout.list_segments(home / "spool"))
            for ref in filled[: len(filled) // 2]:  # the collector ships some: space is back
                if sd.DROPS_TABLE not in layout.segment_tables(ref.path):
                    for table, data in layout.read_segment(ref.path).items():
                        shipped[table] += data.num_rows
                    ref.path.unlink()
            requests(log, 400, 1, width=1)
        finally:
            log.close()
        rows, lost = spooled(home / "spool")
        assert lost["stage_events"] > 0
        assert shipped["stage_events"] + rows["stage_events"] + lost["stage_events"] == 401



def test_a_stage_stops_writing_at_half_the_free_space_floor_and_counts_it(tmp_path, monkeypatch):
    free = {"bytes": 1 << 40}
    monkeypatch.setattr("logging_backend.capture.exporter._free_bytes", lambda _: free["bytes"])
    log = stage_log(tmp_path / "home", tmp_path, monkeypatch, min_free_mb=64)
    try:
        requests(log, 0, 2)
        free["bytes"] = 31 << 20  # below 32 MiB = half the floor: the store keeps its room
        requests(log, 2, 5)
        free["bytes"] = 1 << 40
        requests(log, 7, 1)
    finally:
        log.close()
    rows, lost = spooled(tmp_path / "home" / "spool")
    assert lost["stage_events"] == 5 and rows["stage_events"] == 3
