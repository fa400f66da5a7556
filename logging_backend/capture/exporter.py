"""The stage logger's exporter: encode a batch of records and write it to the spool."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from logging_backend.capture.encode import encode
from logging_backend.capture.records import ModelIdentity, Record
from logging_backend.errors import SpoolError
from logging_backend.spool import layout
from logging_backend.spool.drops import DROPS_TABLE, Unspooled

_LOG = logging.getLogger("stagelog.spool")


class SpoolExporter:
    """Writes each batch as one spool segment (:mod:`logging_backend.spool.layout`).

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        identity: Only the host is used (segment names); pid is read per write.
        clock_ns: Source of the flush time in names (tests pin it).
        compression: Arrow IPC buffer compression of v1 segments (``lz4``, ``zstd`` or
            ``None``), in the flush thread; readers (``pyarrow.ipc.open_stream``) decompress
            transparently. v2 segments: :data:`logging_backend.spool.container.COMPRESSED`
            (lz4: a fifth of zstd's CPU for segments 1.1-1.5x the size).
        compress_min_bytes: Smaller tables are written uncompressed: compression is per Arrow
            buffer, and for a flush of a few records its fixed cost per buffer is more than
            the write it saves (measured: ~1.8 ms vs ~0.9 ms of CPU for 16 member records).
        min_free_bytes: below this much free space on the spool's disk a flush is not written
            but counted (``spool_drops``, reason ``writer_failed``): the store and the
            collector's state keep room (half of ``STAGELOG_SPOOL_MIN_FREE_MB`` by default).
        spool_format: ``v2`` (one file per flush, every table in it; the default) or ``v1``
            (one file per table).
    """

    def __init__(
        self,
        spool_dir: str | Path,
        identity: ModelIdentity | None = None,
        clock_ns: Any = None,
        compression: str | None = "lz4",
        compress_min_bytes: int = 256 * 1024,
        min_free_bytes: int = 0,
        spool_format: str = "v2",
    ) -> None:
        import time

        self.spool_dir = Path(spool_dir)
        self.destination = str(self.spool_dir)
        self._host = identity.host if identity else None
        self._clock = clock_ns or time.time_ns
        self._process = psutil.Process()
        self._plain = pa.ipc.IpcWriteOptions()
        self._compressed = pa.ipc.IpcWriteOptions(compression=compression, use_threads=False)
        self._compress_min = compress_min_bytes if compression else None
        # pyarrow imports pandas on its first pa.array() (~0.3 s): pay it at model load,
        # not in the flush thread while the first requests are served
        pa.array([0])
        self.spool_format = spool_format
        self.segments_written = 0
        self._min_free = min_free_bytes
        # rows this process could not spool (a full disk): counted, shipped as spool_drops rows
        self.unspooled = Unspooled(f"{layout.host_name(self._host)} pid {os.getpid()}")
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def export(self, batch: Sequence[Any]) -> None:
        """Encode the batch and write its segment.

        A table that cannot be written (ENOSPC) is not raised: its rows are counted and go
        out as ``spool_drops`` rows with a later segment, so every lost row is counted once.
        """
        try:
            rss = self._process.memory_info().rss
        except Exception:  # a failed sample must not lose the batch
            rss = 0
        gpu_mem = _sample_gpu_memory(batch)
        try:
            tables = encode(batch, rss_bytes=rss, gpu_mem_bytes=gpu_mem)
        except Exception:
            _LOG.exception("stagelog: %d items cannot be encoded together; one by one", len(batch))
            tables = encode_each(batch, rss, gpu_mem)
        lost = self.unspooled.attach()
        if lost is not None:
            tables = {**tables, DROPS_TABLE: lost}
        if tables:
            self._write_counting_losses(tables)

    def _write_counting_losses(self, tables: dict[str, pa.Table]) -> None:
        if self._min_free and _free_bytes(self.spool_dir) < self._min_free:
            floor = SpoolError(f"less than {self._min_free} bytes free on {self.spool_dir}")
            self._count_lost(tables, floor)
            return
        name = layout.segment_name(now_ns=self._clock(), host=self._host)
        if self.spool_format == "v2":
            # one file: written whole or not at all, so a failure loses (and counts) every table
            try:
                self.write_tables(tables, name=name)
            except SpoolError as exc:
                self._count_lost(tables, exc)
            else:
                if DROPS_TABLE in tables:
                    self.unspooled.written()
            return
        for table, data in tables.items():
            try:
                self.write_tables({table: data}, name=name)
            except SpoolError as exc:
                self._count_lost({table: data}, exc)
            else:
                if table == DROPS_TABLE:
                    self.unspooled.written()

    def _count_lost(self, tables: dict[str, pa.Table], exc: Exception) -> None:
        """Count rows not spooled; a drop-count table left out is tried again next flush."""
        if not self.unspooled.rows:
            _LOG.warning("stagelog: %s; counting the rows not spooled", exc)
        for table, data in tables.items():
            if table != DROPS_TABLE:
                self.unspooled.count(table, data.num_rows, exc)

    def write_tables(self, tables: dict[str, pa.Table], name: str | None = None) -> list[Path]:
        """Write the tables of one flush as one segment (v2: one file; ``name``: a fresh one).

        Raises:
            SpoolError: When a file cannot be written.
        """
        name = name or layout.segment_name(now_ns=self._clock(), host=self._host)
        if self.spool_format == "v2":
            paths = layout.write_segment(self.spool_dir, tables, name=name, fmt="v2")
            self.segments_written += 1
            return paths
        return self._write_v1(tables, name)

    def _write_v1(self, tables: dict[str, pa.Table], name: str | None = None) -> list[Path]:
        name = name or layout.segment_name(now_ns=self._clock(), host=self._host)
        paths = []
        for table, data in tables.items():
            options = self._plain
            if (
                self._compress_min is not None
                and data.get_total_buffer_size() >= self._compress_min
            ):
                options = self._compressed
            paths.append(
                layout.write_table_segment(self.spool_dir, table, data, name=name, options=options)
            )
            self.segments_written += 1
        return paths

    def write_segment(self, table: str, data: pa.Table) -> Path:
        """Write one table as a v1 segment of its own (samplers, tools)."""
        return self._write_v1({table: data})[0]

    def shutdown(self) -> None:
        """Nothing to release: every segment is closed once written."""


def _stripped(rec: Record, exc: BaseException) -> Record:
    """A copy of ``rec`` that any encoder accepts.

    No tensors or predictions, the failure as its error, the request id with invalid text
    escaped.
    """
    copy = Record.__new__(Record)
    for slot in Record.__slots__:
        if hasattr(rec, slot):
            setattr(copy, slot, getattr(rec, slot))
    copy.request_id = str(rec.request_id).encode("utf-8", "backslashreplace").decode("utf-8")
    copy.tensors, copy.preds = [], []
    copy.gpu_pending = None
    copy.status = "error"
    reason = f"{type(exc).__name__}: {exc}".encode("utf-8", "backslashreplace").decode("utf-8")
    previous = str(rec.error).encode("utf-8", "backslashreplace").decode("utf-8")
    copy.error = (previous + "; " if previous else "") + f"record not storable: {reason}"[:2000]
    return copy


def encode_each(
    batch: Sequence[Any], rss: int, gpu_mem: dict[int, int | None]
) -> dict[str, pa.Table]:
    """Encode item by item, so that one item no encoder accepts takes no other with it.

    A record that fails is stored without its tensors and predictions, with the failure as its
    error (``stage_events.error``); an item that fails even so is dropped and logged.
    """
    parts: dict[str, list[pa.Table]] = {}
    lost = 0
    for item in batch:
        try:
            encoded = encode([item], rss_bytes=rss, gpu_mem_bytes=gpu_mem)
        except Exception as exc:
            try:
                if not isinstance(item, Record):
                    raise
                encoded = encode([_stripped(item, exc)], rss_bytes=rss, gpu_mem_bytes=gpu_mem)
            except Exception:
                lost += 1
                _LOG.exception("stagelog: an item cannot be encoded even stripped; dropped")
                continue
        for table, data in encoded.items():
            parts.setdefault(table, []).append(data)
    if lost:
        _LOG.error("stagelog: %d of %d items dropped (not encodable)", lost, len(batch))
    return {
        table: pa.concat_tables(chunks, promote_options="permissive")
        for table, chunks in parts.items()
    }


def _free_bytes(path: Path) -> int:
    """Free bytes on ``path``'s disk (one statvfs: about a microsecond per flush)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62  # unknown: the write itself will tell
    return st.f_bavail * st.f_frsize


def _sample_gpu_memory(batch: Sequence[Any]) -> dict[int, int | None]:
    """GPU memory once per logger with a GPU probe in this batch (flush thread only)."""
    out: dict[int, int | None] = {}
    for item in batch:
        if not isinstance(item, Record):
            continue
        logger = item.logger
        key = id(logger)
        if key in out:
            continue
        probe = getattr(logger, "gpu_probe", None)
        if probe is None:
            out[key] = None
            continue
        try:
            out[key] = probe.memory_bytes()
        except Exception:
            _LOG.exception("stagelog: GPU memory sample failed; gpu_mem_bytes left NULL")
            out[key] = None
    return out
