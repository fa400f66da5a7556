"""The v2 segment container: every table of a flush in one file."""

from __future__ import annotations

import pyarrow as pa
import pytest

from logging_backend.errors import SpoolError
from logging_backend.spool import container


def _write(path, tables):
    with open(path, "wb") as fh:
        for part in container.pack(tables):
            fh.write(part)


def test_tables_round_trip_and_are_listed_from_the_header(tmp_path):
    big = pa.table({"v": pa.array(range(100_000), pa.float64())})  # compressed (>= 256 KiB)
    tables = {"stage_events": pa.table({"a": [1, 2]}), "stage_tensors": big}
    path = tmp_path / "s.seg"
    _write(path, tables)
    assert container.is_container(path)
    assert container.table_names(path) == ["stage_events", "stage_tensors"]
    back = container.unpack(path)
    assert back["stage_events"].equals(tables["stage_events"]) and back["stage_tensors"].equals(big)


def test_a_truncated_or_foreign_file_is_a_spool_error(tmp_path):
    path = tmp_path / "s.seg"
    _write(path, {"t": pa.table({"a": list(range(1000))})})
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(SpoolError, match="truncated|t:"):
        container.unpack(path)
    path.write_bytes(b"ARROW1" + data[6:])
    assert not container.is_container(path)
    with pytest.raises(SpoolError, match="not a v2 container"):
        container.unpack(path)
    path.write_bytes(data[:20])
    with pytest.raises(SpoolError):
        container.table_names(path)


def test_big_tables_are_lz4_in_one_thread_and_zstd_segments_still_read(tmp_path, monkeypatch):
    big = pa.table({"v": pa.array([float(i % 100) for i in range(100_000)], pa.float64())})
    plain = sum(len(p) for p in container.pack({"stage_tensors": big.slice(0, 1000)})) * 100
    assert container.COMPRESSED.compression == "lz4" and not container.COMPRESSED.use_threads
    path = tmp_path / "new.seg"
    _write(path, {"stage_tensors": big})
    assert path.stat().st_size < plain / 4  # compressed
    assert container.unpack(path)["stage_tensors"].equals(big)
    # a segment an older stagelog wrote (zstd on Arrow's thread pool) reads the same
    monkeypatch.setattr(container, "COMPRESSED", pa.ipc.IpcWriteOptions(compression="zstd"))
    old = tmp_path / "old.seg"
    _write(old, {"stage_tensors": big})
    assert old.read_bytes() != path.read_bytes()
    assert container.unpack(old)["stage_tensors"].equals(big)
