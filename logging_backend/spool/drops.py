"""``spool_drops`` rows: every row that will never reach the store, counted where it was lost.

Both sides of the spool write them: a stage process for rows it could not spool (its own
write failed, e.g. ENOSPC), the collector for rows the disk budget removed or the store
refused. ``sum(rows)`` per ``target_table`` is the number of rows missing from that table.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import pyarrow as pa

from logging_backend.spool.schemas import SCHEMAS

DROPS_TABLE = "spool_drops"

# Reasons (the ``reason`` column).
WRITER_FAILED = "writer_failed"  # a stage process could not write its segment
BUDGET = "budget"  # the collector removed rows to keep the spool within its disk budget
REJECTED = "rejected"  # the store refused the rows (set aside in spool/.rejected)
UNREADABLE = "unreadable"  # the segment cannot be decoded (set aside; rows unknown)
ORPHAN_TMP = "orphan_tmp"  # an unfinished segment of a writer that stopped

SCHEMA = SCHEMAS[DROPS_TABLE]


@dataclass(frozen=True)
class Drop:
    """One drop decision: ``rows`` rows of ``target_table`` in ``segments`` segments."""

    target_table: str
    segments: int
    rows: int
    size: int
    reason: str
    detail: str
    ts_us: int = 0


def drop(target_table: str, segments: int, rows: int, size: int, reason: str,
         detail: str) -> Drop:
    """A drop stamped now."""
    return Drop(target_table, segments, rows, size, reason, detail, time.time_ns() // 1000)


def drops_table(drops: list[Drop], host: str | None = None) -> pa.Table:
    """The ``spool_drops`` rows of ``drops``."""
    name = host if host is not None else socket.gethostname()
    return pa.Table.from_pylist(
        [
            {
                "ts": d.ts_us,
                "host": name,
                "target_table": d.target_table,
                "segments": d.segments,
                "rows": d.rows,
                "bytes": d.size,
                "reason": d.reason,
                "detail": d.detail[:4000],
            }
            for d in drops
        ],
        schema=SCHEMA,
    )


class Unspooled:
    """Rows a writer could not spool (its own write failed), until a later write counts them.

    A stage process cannot reach the store, so its losses travel like any other row: the
    next segment it manages to write carries their ``spool_drops`` rows (``attach``); once
    that write succeeded, ``written`` forgets them. A write that fails again keeps them.

    Args:
        who: the writer, for the ``detail`` column (e.g. ``"preprocess pid 4242"``).
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self.rows: dict[str, int] = {}
        self.segments: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self._attached: dict[str, tuple[int, int]] = {}

    def count(self, table: str, rows: int, error: BaseException) -> None:
        """Count ``rows`` of ``table`` that were not written."""
        self.rows[table] = self.rows.get(table, 0) + rows
        self.segments[table] = self.segments.get(table, 0) + 1
        self.errors[table] = str(error)[:500]

    def attach(self) -> pa.Table | None:
        """The ``spool_drops`` rows of everything counted so far (None when nothing is)."""
        if not self.rows:
            return None
        self._attached = {t: (self.rows[t], self.segments[t]) for t in self.rows}
        return drops_table(
            [
                drop(t, self.segments[t], self.rows[t], 0, WRITER_FAILED,
                     f"{self.who} could not write: {self.errors.get(t, '')}")
                for t in sorted(self.rows)
            ]
        )

    def written(self) -> None:
        """The attached rows are in the spool now: stop counting them."""
        for table, (rows, segments) in self._attached.items():
            self.rows[table] -= rows
            self.segments[table] -= segments
            if self.rows[table] <= 0:
                del self.rows[table], self.segments[table]
        self._attached = {}
