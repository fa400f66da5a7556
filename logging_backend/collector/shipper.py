"""Ship spool segments into ClickHouse: batching, idempotent tokens, manifests, disk budget.

The seam is described in docs/architecture.md ("Spool"). In short: segments of one table are
concatenated into one insert whose ``insert_deduplication_token`` is derived from the segment
names; the batch's manifest is written before the insert and replayed after a crash, so a
retried insert adds no rows; segments are deleted only after their insert succeeded. When the
spool exceeds its disk budget the oldest segments are dropped (``stage_tensors`` first), and
every drop becomes a row of ``stagelog.spool_drops``, shipped like any other segment.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend import store
from logging_backend.errors import SpoolError, StoreError, StoreUnavailable
from logging_backend.spool import layout
from logging_backend.spool.layout import (
    ORPHAN_TMP_AGE_S,
    REJECTED_DIR,
    SEGMENT_SUFFIX,
    TMP_SUFFIX,
    atomic_write_text,
    batch_token,
    host_name,
    read_table_segment,
)
from logging_backend.spool.schemas import SCHEMAS

log = logging.getLogger("stagelog.shipper")

DROPS_TABLE = "spool_drops"
# Dropped first when the spool is over budget; DROPS_TABLE is never dropped.
DROP_ORDER = ("stage_tensors",)
DEFAULT_MAX_BATCH_BYTES = 32 << 20  # compressed segment bytes; several times that in memory
DEFAULT_MAX_BATCH_SEGMENTS = 5000


@dataclass
class Stats:
    """What a shipper did since it started (shown by the collector's /health)."""

    inserts: int = 0
    rows: int = 0
    segments: int = 0
    transient_failures: int = 0
    dropped_segments: Counter = field(default_factory=Counter)  # by reason
    dropped_rows: Counter = field(default_factory=Counter)  # by table

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "inserts": self.inserts,
            "rows": self.rows,
            "segments": self.segments,
            "transient_failures": self.transient_failures,
            "dropped_segments": dict(self.dropped_segments),
            "dropped_rows": dict(self.dropped_rows),
        }


@dataclass
class Batch:
    """Segments of one table shipped by one insert (or by one insert per schema)."""

    table: str
    names: list[str]

    @property
    def token(self) -> str:
        """Its deduplication token."""
        return batch_token(self.table, self.names)


class Shipper:
    """Moves segments from a spool directory into ClickHouse.

    Not thread-safe: one shipper per spool, driven by one thread (the collector's loop).

    Args:
        client: an open store client (``store.connect``); calls hold ``lock``.
        spool_dir: ``$STAGELOG_HOME/spool``.
        budget_bytes: the spool's disk budget; None for no budget.
        max_batch_bytes: upper bound of the segment bytes in one insert.
        max_batch_segments: upper bound of the segments in one insert.
        lock: serialises use of ``client`` with other threads (the query endpoint).
        destination: how the store is named in log lines (no password).
    """

    def __init__(
        self,
        client: Client,
        spool_dir: Path,
        budget_bytes: int | None = None,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_segments: int = DEFAULT_MAX_BATCH_SEGMENTS,
        lock: threading.Lock | None = None,
        destination: str = "ClickHouse",
    ) -> None:
        self.client = client
        self.spool_dir = Path(spool_dir)
        self.budget_bytes = budget_bytes
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_segments = max_batch_segments
        self.lock = lock or threading.Lock()
        self.destination = destination
        self.stats = Stats()

    # ------------------------------------------------------------------ spool inspection

    def tables(self) -> list[str]:
        """Table directories present in the spool."""
        return layout.tables(self.spool_dir)

    def segments(self, table: str) -> list[Path]:
        """Complete segments of ``table``, oldest first (names sort by time)."""
        return layout.table_segments(self.spool_dir, table)

    def manifests(self, table: str) -> list[Path]:
        """Batches of ``table`` that were being shipped when a previous run stopped."""
        return layout.manifests(self.spool_dir, table)

    def pending(self) -> int:
        """Number of complete segments waiting in the spool."""
        return sum(len(self.segments(t)) for t in self.tables())

    def spool_bytes(self) -> int:
        """Bytes of segments (complete and being written) in the spool."""
        total = 0
        for table in self.tables():
            for path in (self.spool_dir / table).iterdir():
                if path.name.endswith((SEGMENT_SUFFIX, SEGMENT_SUFFIX + TMP_SUFFIX)):
                    try:
                        total += path.stat().st_size
                    except FileNotFoundError:
                        continue
        return total

    # ------------------------------------------------------------------ shipping

    def ship_all(self, max_batches: int | None = None) -> int:
        """Ship what is in the spool now, in batches, round-robin over tables.

        Segments that arrive meanwhile wait for the next call, so that a steady stream of new
        segments cannot keep this call (and the collector's loop) from returning.

        Args:
            max_batches: stop after this many batches (None: until the snapshot is shipped).

        Returns:
            Rows inserted.

        Raises:
            StoreUnavailable: the store failed transiently; nothing was lost, retry later.
        """
        # Hook (issue 11): stages write v2 segments (one file per flush); this shipper ships by
        # table, so each is split into v1 files of the same name first. A shipper that reads
        # segments through layout.read_segment (issue 12) makes this line unnecessary.
        layout.split_containers(self.spool_dir)
        snapshot = {t: {p.name for p in self.segments(t)} for t in self.tables()}
        rows = 0
        batches = 0
        while True:
            shipped_any = False
            for table, names in snapshot.items():
                if max_batches is not None and batches >= max_batches:
                    return rows
                result = self.ship_one(table, only=names)
                if result is not None:
                    rows += result
                    batches += 1
                    shipped_any = True
            if not shipped_any:
                return rows

    def ship_one(self, table: str, only: set[str] | None = None) -> int | None:
        """Ship one batch of ``table``: a pending manifest first, else the oldest segments.

        Args:
            table: the table (spool folder).
            only: ship only segments with these names (None: any).

        Returns:
            Rows inserted, or None when there was nothing to ship.
        """
        for manifest in self.manifests(table):
            return self._replay(table, manifest)
        batch = self._next_batch(table, only)
        if batch is None:
            return None
        manifest = self._manifest_path(batch)
        atomic_write_text(manifest, json.dumps({"token": batch.token, "segments": batch.names}))
        return self._ship(batch, manifest)

    def _manifest_path(self, batch: Batch) -> Path:
        return layout.manifest_path(self.spool_dir, batch.table, batch.token)

    def _next_batch(self, table: str, only: set[str] | None = None) -> Batch | None:
        names: list[str] = []
        size = 0
        for path in self.segments(table):
            if only is not None and path.name not in only:
                continue
            try:
                seg_size = path.stat().st_size
            except FileNotFoundError:
                continue
            if names and (
                size + seg_size > self.max_batch_bytes or len(names) >= self.max_batch_segments
            ):
                break
            names.append(path.name)
            size += seg_size
        return Batch(table, names) if names else None

    def _replay(self, table: str, manifest: Path) -> int:
        try:
            names = layout.read_manifest(manifest)["segments"]
        except SpoolError as exc:
            # A manifest is written atomically, so this is outside damage (or a hostile file:
            # names are checked, nothing outside the spool is touched); its segments are still
            # in the spool and will be shipped as a new batch.
            log.warning("ignoring batch manifest: %s", exc)
            manifest.unlink(missing_ok=True)
            return 0
        directory = self.spool_dir / table
        present = [n for n in names if (directory / n).exists()]
        if len(present) < len(names):
            # Segments are deleted only after the insert succeeded: the batch is in the store.
            for name in present:
                (directory / name).unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
            log.info("batch %s of %s was already shipped; cleaned up", manifest.name, table)
            return 0
        log.info("replaying batch %s of %s (%d segments)", manifest.name, table, len(names))
        return self._ship(Batch(table, names), manifest)

    def _ship(self, batch: Batch, manifest: Path) -> int:
        directory = self.spool_dir / batch.table
        tables: list[pa.Table] = []
        unreadable: list[str] = []
        for name in batch.names:
            try:
                tables.append(read_table_segment(directory / name))
            except SpoolError as exc:
                log.error("%s", exc)
                unreadable.append(name)
        if unreadable:
            # Set the bad files aside and ship the rest as a new batch (new token: the old
            # batch was never inserted, because reading precedes inserting).
            for name in unreadable:
                self._reject(batch.table, name, "unreadable", "not an Arrow IPC stream")
            manifest.unlink(missing_ok=True)
            return 0
        rows = sum(t.num_rows for t in tables)
        if rows:
            try:
                self._insert(batch.table, tables, batch.token)
            except StoreUnavailable:
                self.stats.transient_failures += 1
                raise
            except StoreError as exc:
                manifest.unlink(missing_ok=True)
                if len(batch.names) == 1:
                    self._reject(batch.table, batch.names[0], "rejected", str(exc)[:2000])
                    return 0
                # Find the rejected segment(s): ship each on its own (own tokens).
                log.warning(
                    "%s rejected a batch of %d %s segments (%s); shipping them one by one",
                    self.destination, len(batch.names), batch.table, exc,
                )
                shipped = 0
                for name in batch.names:
                    single = Batch(batch.table, [name])
                    single_manifest = self._manifest_path(single)
                    atomic_write_text(
                        single_manifest, json.dumps({"token": single.token, "segments": [name]})
                    )
                    shipped += self._ship(single, single_manifest)
                return shipped
        for name in batch.names:
            (directory / name).unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
        self.stats.inserts += 1
        self.stats.rows += rows
        self.stats.segments += len(batch.names)
        return rows

    def _insert(self, table: str, tables: list[pa.Table], token: str) -> None:
        try:
            groups = [pa.concat_tables(tables, promote_options="permissive")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Segments with incompatible schemas: one insert per schema, in a fixed order so a
            # replay produces the same inserts and tokens.
            by_schema: dict[str, list[pa.Table]] = {}
            for t in tables:
                by_schema.setdefault(t.schema.to_string(), []).append(t)
            groups = [pa.concat_tables(ts) for ts in by_schema.values()]
        for index, data in enumerate(groups):
            part_token = token if len(groups) == 1 else f"{token}-{index}"
            try:
                with self.lock:
                    self.client.insert_arrow(
                        f"{store.DATABASE}.{table}",
                        data,
                        settings={"insert_deduplication_token": part_token},
                    )
            except (ClickHouseError, OSError) as exc:
                if store.is_transient(exc):
                    raise StoreUnavailable(
                        f"insert into {store.DATABASE}.{table} at {self.destination} failed: {exc}"
                    ) from exc
                raise StoreError(
                    f"{self.destination} rejected {data.num_rows} rows for "
                    f"{store.DATABASE}.{table}: {exc}"
                ) from exc

    def _reject(self, table: str, name: str, reason: str, detail: str) -> None:
        """Move a segment the store cannot take to ``spool/.rejected/<table>/``, counted."""
        source = self.spool_dir / table / name
        target_dir = self.spool_dir / REJECTED_DIR / table
        target_dir.mkdir(parents=True, exist_ok=True)
        try:
            size = source.stat().st_size
            rows = _count_rows(source)
            os.rename(source, target_dir / name)
        except FileNotFoundError:
            return
        log.error("set aside %s segment %s (%s): %s", table, name, reason, detail)
        self._record_drops(table, [name], rows, size, reason, f"{name}: {detail}")

    # ------------------------------------------------------------------ disk budget

    def enforce_budget(self) -> int:
        """Drop the oldest segments (``stage_tensors`` first) while the spool is over budget.

        Also removes orphaned ``*.tmp`` files of crashed writers. Every drop is counted in
        ``stats`` and written as a ``spool_drops`` segment.

        Returns:
            Number of segments dropped.
        """
        dropped = self._remove_orphans()
        if self.budget_bytes is None:
            return dropped
        total = self.spool_bytes()
        if total <= self.budget_bytes:
            return dropped
        in_flight = {
            name
            for table in self.tables()
            for manifest in self.manifests(table)
            for name in _manifest_names(manifest)
        }
        order = [t for t in DROP_ORDER if t in self.tables()]
        order += [t for t in self.tables() if t not in order and t != DROPS_TABLE]
        budget_before = total
        for table in order:
            names: list[str] = []
            rows = size = 0
            for path in self.segments(table):
                if total <= self.budget_bytes:
                    break
                if path.name in in_flight:
                    continue
                try:
                    seg_size = path.stat().st_size
                    seg_rows = _count_rows(path)
                    path.unlink()
                except FileNotFoundError:
                    continue
                names.append(path.name)
                rows += seg_rows
                size += seg_size
                total -= seg_size
            if names:
                detail = (
                    f"spool {budget_before} bytes > budget {self.budget_bytes} bytes; "
                    f"dropped {names[0]} .. {names[-1]}"
                )
                log.warning("spool over budget: dropped %d %s segments (%d rows) destined for %s",
                            len(names), table, rows, self.destination)
                self._record_drops(table, names, rows, size, "budget", detail)
                dropped += len(names)
            if total <= self.budget_bytes:
                break
        return dropped

    def _remove_orphans(self) -> int:
        now = time.time()
        removed = 0
        for table in self.tables():
            for path in (self.spool_dir / table).iterdir():
                if not path.name.endswith(SEGMENT_SUFFIX + TMP_SUFFIX):
                    continue
                try:
                    stat = path.stat()
                    if now - stat.st_mtime < ORPHAN_TMP_AGE_S:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
                self._record_drops(
                    table, [path.name], 0, stat.st_size, "orphan_tmp",
                    f"{path.name}: unfinished segment of a writer that stopped",
                )
        return removed

    def _record_drops(
        self, table: str, names: list[str], rows: int, size: int, reason: str, detail: str
    ) -> None:
        self.stats.dropped_segments[reason] += len(names)
        self.stats.dropped_rows[table] += rows
        record = pa.Table.from_pylist(
            [
                {
                    "ts": time.time_ns() // 1000,
                    "host": host_name(),
                    "target_table": table,
                    "segments": len(names),
                    "rows": rows,
                    "bytes": size,
                    "reason": reason,
                    "detail": detail,
                }
            ],
            schema=SCHEMAS[DROPS_TABLE],
        )
        layout.write_table_segment(self.spool_dir, DROPS_TABLE, record)


def _count_rows(path: Path) -> int:
    return layout.count_rows(path)


def _manifest_names(manifest: Path) -> list[str]:
    try:
        return layout.read_manifest(manifest)["segments"]
    except SpoolError:
        return []
