"""The spool's disk budget and its counted drops (the collector's side of ``spool_drops``).

The budget is the smaller of ``STAGELOG_SPOOL_BUDGET_MB`` and what keeps
``STAGELOG_SPOOL_MIN_FREE_MB`` free on the spool's filesystem, so that the store (chDB lives
on the same disk by default) and the collector's own small files always find room. Over it,
rows go by value: ``stage_tensors`` first, then every other table, while model identity,
policy and drop-count rows are never removed by the budget. A segment holding several tables
loses only the tables being dropped (it is rewritten in place under its own name); the oldest
segments go first. Every removed row is counted in a ``spool_drops`` row.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from logging_backend.errors import SpoolError
from logging_backend.spool import drops as sd
from logging_backend.spool import layout

log = logging.getLogger("stagelog.budget")

FIRST = ("stage_tensors",)  # bulk rows: dropped first
KEPT = ("model_versions", "logging_policy", sd.DROPS_TABLE)  # never dropped by the budget
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
RESERVE_NAME = ".collector-reserve"  # not a segment: the layout lists only segments
RESERVE_BYTES = 256 << 10
LOW_WATER = 0.9  # over the budget, drop down to 90% of it


def segment_key(spool_dir: Path, ref: layout.SegmentRef) -> str:
    """A segment's name, unique in the spool: its path below the spool (v1 ``<table>/<file>``)."""
    return ref.path.relative_to(spool_dir).as_posix()


def check_key(key: str) -> str:
    """``key`` when it is a segment key the layout accepts (read back from a manifest).

    Raises:
        SpoolError: it is not (a path outside the spool, an odd name).
    """
    parts = str(key).split("/")
    if len(parts) == 2:
        layout.check_table(parts[0])
    elif len(parts) != 1:
        raise SpoolError(f"invalid spool segment key {key!r}")
    layout.check_name(parts[-1])
    return str(key)


def tier(table: str) -> int:
    """Drop tier of ``table``: 0 goes first, 1 next, 2 never (by the budget)."""
    if table in FIRST:
        return 0
    return 2 if table in KEPT else 1


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) says the filesystem is full."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on ``path``'s filesystem."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Reserve:
    """Room the collector keeps on the spool's disk for its manifests, released when full.

    Stage processes may take the last byte of a full disk; a batch manifest (a few KB) must
    still be written before the first insert. The collector holds a small file of zeros and
    removes it when a manifest write finds no space, then makes it again once space is back.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        size: bytes held.
    """

    def __init__(self, spool_dir: Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(spool_dir) / RESERVE_NAME
        self.size = size

    def ensure(self) -> bool:
        """Hold the reserve again when the disk has room for it (twice over); True if held."""
        if self.path.exists():
            return True
        try:
            if free_bytes(self.path.parent) < 2 * self.size:
                return False
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(b"\0" * self.size)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError:
            self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
            return False
        return True

    def release(self) -> bool:
        """Give the reserve back to the disk; True when there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("spool disk full: released the collector's %d KB reserve for its manifest",
                    self.size >> 10)
        return True


class DropLog:
    """Drops counted by the collector, kept in memory until written as a spool segment.

    Writing needs a few KB; on a full disk the rows wait here and go out with a later call
    (the budget frees space first), so a full disk never loses a count nor stops the loop.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
    """

    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = Path(spool_dir)
        self.pending: list[sd.Drop] = []
        self.segments: Counter = Counter()  # by reason
        self.rows: Counter = Counter()  # by table
        self._warned = False

    def add(self, target_table: str, segments: int, rows: int, size: int, reason: str,
            detail: str) -> None:
        """Count one drop decision (written by the next ``flush``)."""
        self.segments[reason] += segments
        self.rows[target_table] += rows
        self.pending.append(sd.drop(target_table, segments, rows, size, reason, detail))

    def flush(self) -> bool:
        """Write pending drops as one ``spool_drops`` segment; False when the disk refused."""
        if not self.pending:
            return True
        try:
            layout.write_segment(self.spool_dir, {sd.DROPS_TABLE: sd.drops_table(self.pending)})
        except (OSError, SpoolError) as exc:
            if not self._warned:
                log.warning("cannot write %d drop records yet (%s); kept in memory",
                            len(self.pending), exc)
                self._warned = True
            return False
        self.pending.clear()
        self._warned = False
        return True


class Budget:
    """Keeps the spool under min(configured bytes, what leaves ``min_free_bytes`` free).

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        budget_bytes: ``STAGELOG_SPOOL_BUDGET_MB`` in bytes (None: only the free-space floor).
        min_free_bytes: ``STAGELOG_SPOOL_MIN_FREE_MB`` in bytes.
        free: free bytes of a path's filesystem (tests pass a fake disk).
        low_water: once over the budget, drop down to this fraction of it, so that a spool
            under steady pressure drops (and writes a drop record) in chunks, not every poll.
    """

    def __init__(
        self,
        spool_dir: Path,
        budget_bytes: int | None,
        min_free_bytes: int = 0,
        free: Callable[[Path], int] = free_bytes,
        low_water: float = LOW_WATER,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.budget_bytes = budget_bytes
        self.min_free_bytes = min_free_bytes
        self.free = free
        self.low_water = low_water

    def limit(self, used: int) -> int:
        """The budget now, for a spool of ``used`` bytes."""
        try:
            free = self.free(self.spool_dir)
        except OSError:
            free = None
        limits = [] if self.budget_bytes is None else [self.budget_bytes]
        if free is not None:
            limits.append(max(0, used + free - self.min_free_bytes))
        return min(limits) if limits else used

    def enforce(self, drops: DropLog, protected: Iterable[str] = ()) -> int:
        """Remove rows by value until the spool fits; every removal is counted in ``drops``.

        Args:
            drops: where removed rows are counted.
            protected: segment names in a batch being shipped (left alone).

        Returns:
            Rows removed.
        """
        self.remove_orphans(drops)
        refs = layout.list_segments(self.spool_dir)
        used = sum(r.size for r in refs)
        limit = self.limit(used)
        if used <= limit:
            return 0
        target = int(limit * self.low_water)
        keep_out = set(protected)
        over = used
        removed: Counter = Counter()
        counts: dict[str, list[int]] = {}  # table -> [segments, rows, bytes]
        for level in (0, 1):
            for ref in refs:
                if over <= target:
                    break
                key = segment_key(self.spool_dir, ref)
                if key in keep_out:
                    continue
                freed = self._strip(ref, level, counts)
                if freed:
                    keep_out.add(key)
                over -= freed
        detail = f"spool {used} bytes > budget {limit} bytes"
        for table, (segments, rows, size) in counts.items():
            drops.add(table, segments, rows, size, sd.BUDGET, detail)
            removed[table] += rows
            log.warning("spool over budget (%s): dropped %d rows of %s from %d segments",
                        detail, rows, table, segments)
        if over > limit:
            log.warning("spool still over budget: %d bytes > %d bytes (batches in flight and "
                        "model identity, policy and drop rows are kept)", over, limit)
        drops.flush()
        return sum(removed.values())

    def remove_orphans(self, drops: DropLog) -> int:
        """Delete unfinished files of writers that stopped (older than the layout's age), counted.

        Returns:
            Files removed.
        """
        now = time.time()
        removed = 0
        for table in layout.tables(self.spool_dir):
            for path in layout.orphan_tmp_files(self.spool_dir, table):
                try:
                    stat = path.stat()
                    if now - stat.st_mtime < layout.ORPHAN_TMP_AGE_S:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
                drops.add(table, 1, 0, stat.st_size, sd.ORPHAN_TMP,
                          f"{path.name}: unfinished segment of a writer that stopped")
        return removed

    def _strip(self, ref: layout.SegmentRef, level: int, counts: dict[str, list[int]]) -> int:
        """Remove the tables of tier <= ``level`` from one segment; returns bytes freed."""
        size = ref.size  # before it changes (the layout's ref may stat the file)
        try:
            tables = layout.segment_tables(ref.path)
        except SpoolError:
            return 0  # the shipper sets unreadable segments aside
        victims = [t for t in tables if tier(t) <= level]
        if not victims:
            return 0
        try:
            data = layout.read_segment(ref.path)
        except SpoolError:
            return 0
        keep = {t: data[t] for t in tables if t not in victims}
        try:
            if keep:
                # Rewritten under its own name: it keeps its place in the shipping order.
                written = layout.write_segment(self.spool_dir, keep, name=ref.name)
                paths = written if isinstance(written, list) else [written]
                new_size = sum(p.stat().st_size for p in paths)
            else:
                ref.path.unlink()
                new_size = 0
        except FileNotFoundError:
            return 0
        except (OSError, SpoolError) as exc:
            log.info("cannot rewrite %s without %s yet (%s)", ref.path, victims, exc)
            return 0
        total_rows = sum(data[t].num_rows for t in victims) or 1
        for t in victims:
            entry = counts.setdefault(t, [0, 0, 0])
            entry[0] += 1
            entry[1] += data[t].num_rows
            entry[2] += (size - new_size) * data[t].num_rows // total_rows
        return max(0, size - new_size)
