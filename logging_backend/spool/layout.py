"""The spool on disk: segment names, atomic writes, reading, manifests, name checks.

The only code that knows how the seam between stage processes (writers) and the collector
(reader) looks on disk; both sides import it. docs/architecture.md ("Spool") describes it.

- A segment holds the tables of one flush of one process; ``<name>`` is
  ``<unix_ns>-<host>-<pid>-<seq>`` (19-digit time, so names sort by time; one sequence counter
  per process, so names never repeat on one host). Two formats, both read everywhere:

  - v2 (what stages write, issue 11): ONE file per flush, ``<spool>/<name>.seg``, every table
    of the flush in it (:mod:`logging_backend.spool.container`: a small JSON header, then one
    Arrow IPC stream per table).
  - v1: one Arrow IPC stream file per table, ``<spool>/<table>/<name>.arrow``, every table of
    one flush under the same ``<name>`` (older writers, the collector's own drop records, and
    what :func:`split_containers` makes of a v2 segment for a shipper that ships by table).

- Writes are atomic: ``<file>.tmp`` (v2: fsynced), then ``os.rename``. Readers only see
  complete files.
- Every name read back from disk (a directory entry, a manifest's list) passes
  :func:`check_name` / :func:`check_table` before it is joined to a path, so nothing outside
  the spool is ever read, moved or deleted.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from logging_backend.errors import SpoolError
from logging_backend.spool import container

SEGMENT_SUFFIX = ".arrow"
CONTAINER_SUFFIX = ".seg"  # v2: every table of one flush in one file
FORMATS = ("v1", "v2")
TMP_SUFFIX = ".tmp"
MANIFEST_PREFIX = ".batch-"
MANIFEST_SUFFIX = ".json"
REJECTED_DIR = ".rejected"
ORPHAN_TMP_AGE_S = 600.0  # a *.tmp older than this belongs to a writer that stopped

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_SEGMENT_NAME = re.compile(r"^[0-9]{19}-[A-Za-z0-9_.]{1,255}-[0-9]{1,10}-[0-9]{8,}\.arrow$")
_CONTAINER_NAME = re.compile(r"^[0-9]{19}-[A-Za-z0-9_.]{1,255}-[0-9]{1,10}-[0-9]{8,}\.seg$")
_MANIFEST_NAME = re.compile(r"^\.batch-[0-9a-f]{8,64}\.json$")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")

_seq = itertools.count()
_seq_lock = threading.Lock()


# -- names ---------------------------------------------------------------------------------


def host_name(host: str | None = None) -> str:
    """A host name as it appears in segment names (``[A-Za-z0-9_.]`` only)."""
    name = _HOST_UNSAFE.sub("_", socket.gethostname() if host is None else host)
    return name.strip(".") or "host"


def segment_name(now_ns: int | None = None, host: str | None = None) -> str:
    """A new segment file name ``<unix_ns>-<host>-<pid>-<seq>.arrow``, unique on this host."""
    with _seq_lock:
        seq = next(_seq)
    stamp = time.time_ns() if now_ns is None else now_ns
    return f"{stamp:019d}-{host_name(host)}-{os.getpid()}-{seq:08d}{SEGMENT_SUFFIX}"


def check_table(table: str) -> str:
    """``table`` when it is a valid spool table (folder) name.

    Raises:
        SpoolError: it is not (``..``, a path, upper case, too long, ...).
    """
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise SpoolError(f"invalid spool table name {table!r}")
    return table


def check_name(name: str) -> str:
    """``name`` when it is a valid segment file name (no path, no ``..``).

    Raises:
        SpoolError: it is not.
    """
    if not isinstance(name, str) or not (_SEGMENT_NAME.match(name) or _CONTAINER_NAME.match(name)):
        raise SpoolError(f"invalid spool segment name {name!r}")
    return name


def is_segment_name(name: str) -> bool:
    """Whether ``name`` is a complete segment's file name (v1 ``.arrow`` or v2 ``.seg``)."""
    return bool(_SEGMENT_NAME.match(name) or _CONTAINER_NAME.match(name))


def container_name(name: str) -> str:
    """The v2 file name of segment ``name`` (``<base>.arrow`` or ``<base>.seg``)."""
    base = name[: -len(SEGMENT_SUFFIX)] if name.endswith(SEGMENT_SUFFIX) else name
    if base.endswith(CONTAINER_SUFFIX):
        base = base[: -len(CONTAINER_SUFFIX)]
    return check_name(base + CONTAINER_SUFFIX)


def is_manifest_name(name: str) -> bool:
    """Whether ``name`` is a batch manifest's file name."""
    return bool(_MANIFEST_NAME.match(name))


# -- writing -------------------------------------------------------------------------------


def write_table_segment(
    spool_dir: str | Path,
    table: str,
    data: pa.Table,
    name: str | None = None,
    options: pa.ipc.IpcWriteOptions | None = None,
) -> Path:
    """Write ``data`` as the ``table`` part of a segment, atomically (tmp + rename).

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        table: the ClickHouse table (``stagelog.<table>``).
        data: rows; column names are the table's column names.
        name: the segment's file name; a fresh :func:`segment_name` by default.
        options: Arrow IPC write options (compression).

    Returns:
        The path of the complete file.

    Raises:
        SpoolError: an invalid name, or the file cannot be written.
    """
    directory = Path(spool_dir) / check_table(table)
    final = directory / check_name(name or segment_name())
    tmp = final.with_name(final.name + TMP_SUFFIX)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_stream(sink, data.schema, options=options) as writer:
                writer.write_table(data)
        os.rename(tmp, final)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise SpoolError(f"cannot write spool segment {final}: {exc}") from exc
    return final


def write_segment(
    spool_dir: str | Path,
    tables: Mapping[str, pa.Table],
    name: str | None = None,
    options: pa.ipc.IpcWriteOptions | None = None,
    fmt: str = "v2",
) -> list[Path]:
    """Write the tables of one flush as one segment.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        tables: table name -> rows.
        name: the segment's name; a fresh :func:`segment_name` by default.
        options: Arrow IPC write options (v1 only; v2 compresses tables of 256 KiB and more).
        fmt: ``v2`` (one file, ``<spool>/<name>.seg``) or ``v1`` (one file per table).

    Returns:
        The files written (v2: one; v1: in the order of ``tables``).

    Raises:
        SpoolError: an invalid name or table, or the file cannot be written.
    """
    name = name or segment_name()
    if fmt == "v1":
        return [
            write_table_segment(spool_dir, table, data, name=name, options=options)
            for table, data in tables.items()
        ]
    if fmt != "v2":
        raise SpoolError(f"unknown spool format {fmt!r} (one of {', '.join(FORMATS)})")
    for table in tables:
        check_table(table)
    final = Path(spool_dir) / container_name(name)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    parts = container.pack(tables)
    try:
        try:
            fh = open(tmp, "wb")
        except FileNotFoundError:  # no spool folder yet (or it was removed): make it once
            final.parent.mkdir(parents=True, exist_ok=True)
            fh = open(tmp, "wb")
        with fh:
            fh.writelines(parts)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, final)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise SpoolError(f"cannot write spool segment {final}: {exc}") from exc
    return [final]


def split_containers(spool_dir: str | Path) -> int:
    """Turn every v2 segment into v1 files (one per table, same name), for a table shipper.

    A hook for shippers that ship table by table: each table of ``<name>.seg`` is written as
    ``<table>/<name>.arrow`` (atomically), then the v2 file is removed. Crash-safe: a segment
    split again after a crash rewrites the same names, whose insert tokens the store already
    knows. An unreadable v2 segment is left in place (the caller's budget sees it); a
    ``<name>.seg.tmp`` older than :data:`ORPHAN_TMP_AGE_S` (a writer that died) is deleted.

    Returns:
        The number of v2 segments split.
    """
    done = 0
    root = Path(spool_dir)
    if root.is_dir():  # a v2 writer that died mid-write leaves <name>.seg.tmp in the root
        now = time.time()
        for tmp in root.glob("*" + CONTAINER_SUFFIX + TMP_SUFFIX):
            try:
                if now - tmp.stat().st_mtime > ORPHAN_TMP_AGE_S:
                    tmp.unlink()
            except OSError:
                pass
    for path in container_segments(spool_dir):
        try:
            tables = container.unpack(path)
        except SpoolError:
            continue
        name = path.name[: -len(CONTAINER_SUFFIX)] + SEGMENT_SUFFIX
        for table, data in tables.items():
            write_table_segment(spool_dir, table, data, name=name)
        path.unlink(missing_ok=True)
        done += 1
    return done


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file (manifest, state) atomically and durably."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentRef:
    """One complete segment file in the spool."""

    table: str
    path: Path

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name

    @property
    def size(self) -> int:
        """Bytes on disk (0 when it is gone)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def tables(spool_dir: str | Path) -> list[str]:
    """Table folders present in the spool."""
    root = Path(spool_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _TABLE_NAME.match(p.name))


def table_segments(spool_dir: str | Path, table: str) -> list[Path]:
    """Complete segment files of ``table``, oldest first (names sort by time)."""
    directory = Path(spool_dir) / check_table(table)
    if not directory.is_dir():
        return []
    return sorted(
        (p for p in directory.iterdir() if _SEGMENT_NAME.match(p.name)), key=lambda p: p.name
    )


def container_segments(spool_dir: str | Path) -> list[Path]:
    """Complete v2 segment files (``<spool>/<name>.seg``), oldest first."""
    root = Path(spool_dir)
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if _CONTAINER_NAME.match(p.name)), key=lambda p: p.name
    )


def list_segments(spool_dir: str | Path) -> list[SegmentRef]:
    """Every complete segment file in the spool, oldest first (v2 ones with ``table`` '')."""
    refs = [SegmentRef(t, p) for t in tables(spool_dir) for p in table_segments(spool_dir, t)]
    refs.extend(SegmentRef("", p) for p in container_segments(spool_dir))
    return sorted(refs, key=lambda r: (r.name, r.table))


def read_table_segment(path: str | Path) -> pa.Table:
    """Read one table's segment file.

    Raises:
        SpoolError: it is not a readable Arrow IPC stream.
    """
    try:
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_stream(source, options=container.READ_OPTIONS).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise SpoolError(f"unreadable spool segment {path}: {exc}") from exc


def read_segment(path: str | Path) -> dict[str, pa.Table]:
    """Read a segment file: table name → rows (v1: the table is the file's folder).

    Raises:
        SpoolError: it is not a complete, readable segment, or names an invalid table.
    """
    path = Path(path)
    if path.name.endswith(CONTAINER_SUFFIX):
        return {check_table(t): data for t, data in container.unpack(path).items()}
    return {check_table(path.parent.name): read_table_segment(path)}


def segment_tables(path: str | Path) -> list[str]:
    """The tables a segment file holds, without decoding it (v2: from its header)."""
    path = Path(path)
    if path.name.endswith(CONTAINER_SUFFIX):
        return [check_table(t) for t in container.table_names(path)]
    return [check_table(path.parent.name)]


def count_rows(path: str | Path) -> int:
    """Rows in a segment file (0 when it cannot be read)."""
    try:
        return sum(t.num_rows for t in read_segment(path).values())
    except SpoolError:
        return 0


def orphan_tmp_files(spool_dir: str | Path, table: str) -> list[Path]:
    """Unfinished segment files (``*.arrow.tmp``) of ``table``."""
    directory = Path(spool_dir) / check_table(table)
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX + TMP_SUFFIX)]


# -- manifests -----------------------------------------------------------------------------


def batch_token(table: str, names: Iterable[str]) -> str:
    """The insert_deduplication_token of a batch: sha256 of the table and its segment names."""
    digest = hashlib.sha256(table.encode())
    for name in names:
        digest.update(b"\n" + name.encode())
    return digest.hexdigest()


def manifest_path(spool_dir: str | Path, table: str, token: str) -> Path:
    """Where the manifest of the batch with ``token`` lives."""
    return Path(spool_dir) / check_table(table) / f"{MANIFEST_PREFIX}{token[:32]}{MANIFEST_SUFFIX}"


def manifests(spool_dir: str | Path, table: str) -> list[Path]:
    """Manifests of ``table``'s batches that were being shipped when a run stopped."""
    directory = Path(spool_dir) / check_table(table)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _MANIFEST_NAME.match(p.name))


def write_manifest(
    spool_dir: str | Path, table: str, token: str, names: list[str], **meta: Any
) -> Path:
    """Write a batch manifest (segment names in order, the token, extra fields) atomically."""
    for name in names:
        check_name(name)
    path = manifest_path(spool_dir, table, token)
    atomic_write_text(path, json.dumps({"token": token, "segments": names, **meta}))
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest; every segment name in it is checked.

    Raises:
        SpoolError: it is unreadable, malformed, or names anything but a segment file.
    """
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        names = info["segments"]
        token = str(info["token"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpoolError(f"unreadable batch manifest {path}: {exc}") from exc
    if not isinstance(names, list):
        raise SpoolError(f"batch manifest {path}: 'segments' is not a list")
    info["segments"] = [check_name(n) for n in names]
    info["token"] = token
    return info
