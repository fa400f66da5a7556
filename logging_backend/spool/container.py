"""The v2 segment container: every table of one flush in one file.

Layout (all integers little-endian)::

    STGSEG2 + newline                    8 bytes, the magic
    uint32 header length H
    H bytes of JSON: {"version": 2, "tables": [{"name", "offset", "length", "rows"}, ...]}
    the tables' Arrow IPC streams, back to back (offset: from the first byte after the header)

Each table is a plain Arrow IPC stream (lz4 buffer compression for big ones), so a table is
read without copying (``pa.ipc.open_stream`` on a slice of a memory map) and the list of
tables is known from the header alone. :mod:`logging_backend.spool.layout` names, writes
atomically and lists segments; this module only packs and unpacks the bytes of one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from logging_backend.errors import SpoolError

MAGIC = b"STGSEG2\n"
VERSION = 2
_LEN = struct.Struct("<I")
COMPRESS_MIN_BYTES = 256 * 1024  # smaller tables: compression costs more CPU than it saves

_PLAIN = pa.ipc.IpcWriteOptions()
# lz4 in the writing thread: zstd on Arrow's thread pool (the default before) cost 5.6-7.3 us
# of CPU per record to pack and 4.7-6.8 to read back, lz4 in one thread 0.8-1.2 and 0.6-0.8,
# for segments 1.1-1.5x the size (issue 11, bench/results/i11h/packab-out.txt). One thread:
# a flush's buffers are small; handing each to a pool thread costs more than compressing it.
COMPRESSED = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
# zstd, lz4 or none, whichever wrote the segment: the codec is in each buffer's metadata
READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)


def pack(tables: Mapping[str, pa.Table]) -> list[pa.Buffer | bytes]:
    """The bytes of one v2 segment, as a list of buffers to write in order."""
    bodies: list[pa.Buffer] = []
    entries = []
    offset = 0
    for name, table in tables.items():
        options = COMPRESSED if table.get_total_buffer_size() >= COMPRESS_MIN_BYTES else _PLAIN
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        body = sink.getvalue()
        entries.append(
            {"name": name, "offset": offset, "length": body.size, "rows": table.num_rows}
        )
        offset += body.size
        bodies.append(body)
    header = json.dumps({"version": VERSION, "tables": entries}, separators=(",", ":")).encode()
    return [MAGIC + _LEN.pack(len(header)) + header, *bodies]


def is_container(path: Path) -> bool:
    """Whether the file starts with the v2 magic."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


def _header(buf: memoryview | bytes, path: Path) -> tuple[list[dict], int]:
    if bytes(buf[: len(MAGIC)]) != MAGIC:
        raise SpoolError(f"spool segment {path} is not a v2 container")
    try:
        (size,) = _LEN.unpack_from(buf, len(MAGIC))
        start = len(MAGIC) + _LEN.size
        header = json.loads(bytes(buf[start : start + size]))
        entries = header["tables"]
        for entry in entries:
            if not isinstance(entry.get("name"), str):
                raise ValueError("table entry without a name")
            int(entry["offset"]), int(entry["length"])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise SpoolError(f"spool segment {path} has a damaged header: {exc}") from exc
    return entries, start + size


def table_names(path: Path) -> list[str]:
    """The tables of a v2 segment, from its header only."""
    with open(path, "rb") as fh:
        head = fh.read(len(MAGIC) + _LEN.size)
        if len(head) < len(MAGIC) + _LEN.size:
            raise SpoolError(f"spool segment {path} is truncated")
        (size,) = _LEN.unpack_from(head, len(MAGIC))
        entries, _ = _header(head + fh.read(size), path)
    return [e["name"] for e in entries]


def unpack(path: Path) -> dict[str, pa.Table]:
    """Every table of a v2 segment.

    Raises:
        SpoolError: The file is not a complete, readable v2 segment.
    """
    try:
        with pa.memory_map(str(path), "r") as source:
            buf = source.read_buffer()
    except OSError as exc:
        raise SpoolError(f"unreadable spool segment {path}: {exc}") from exc
    entries, body = _header(memoryview(buf), path)
    out: dict[str, pa.Table] = {}
    for entry in entries:
        start = body + int(entry["offset"])
        end = start + int(entry["length"])
        if end > buf.size:
            raise SpoolError(f"spool segment {path} is truncated (table {entry['name']})")
        try:
            out[entry["name"]] = pa.ipc.open_stream(
                buf.slice(start, end - start), options=READ_OPTIONS
            ).read_all()
        except pa.ArrowInvalid as exc:
            raise SpoolError(f"spool segment {path}: table {entry['name']}: {exc}") from exc
    return out
