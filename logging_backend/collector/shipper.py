"""Ship spool segments into ClickHouse exactly once: batches, dedup tokens, manifests, rejects.

The seam is ``logging_backend.spool.layout`` (docs/architecture.md, "Spool"); this module knows
no file names. A batch is a set of segments (oldest first); every table they hold goes in as
one insert whose ``insert_deduplication_token`` is derived from the table and the sorted
segment names. The batch's manifest is written before its first insert and replayed after a
crash, so a retried insert adds no rows.

When the store refuses an insert (wrong types, a broken column), the part is bisected: each
half is a new insert with its own deterministic token, recorded in the manifest before it is
sent, until the refused segment stands alone; it is set aside in ``spool/.rejected`` and its
rows counted in ``spool_drops``. No other segment is ever inserted under two tokens. A segment
is deleted only when every table in it is shipped or set aside.

Transient failures (network, overload, a full disk on either side: ENOSPC, chDB's
NOT_ENOUGH_SPACE) keep everything and raise ``StoreUnavailable`` / ``SpoolFull``: the
collector retries with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend import store
from logging_backend.collector.budget import (
    Budget,
    DropLog,
    Reserve,
    check_key,
    is_no_space,
    segment_key,
)
from logging_backend.errors import SpoolError, SpoolFull, StoreUnavailable
from logging_backend.spool import drops as sd
from logging_backend.spool import layout, schemas

log = logging.getLogger("stagelog.shipper")

REJECTED_DIR = layout.REJECTED_DIR
DROPS_TABLE = sd.DROPS_TABLE
DEFAULT_MAX_BATCH_BYTES = 32 << 20  # compressed segment bytes; several times that in memory
DEFAULT_MAX_BATCH_SEGMENTS = 5000
MIN_BATCH_BYTES = 1 << 20  # however small the budget, a batch may be this big
# Every insert: synchronous (an async insert ignores the token unless async dedup is on, and
# ClickHouse 26.x turns async inserts on by default), deduplicated by the token.
INSERT_SETTINGS = {"async_insert": 0, "insert_deduplicate": 1}


def batch_token(table: str, names: Iterable[str]) -> str:
    """The insert_deduplication_token of one insert: sha256 of the table and sorted names."""
    digest = hashlib.sha256(table.encode())
    for name in sorted(names):
        digest.update(b"\n" + name.encode())
    return digest.hexdigest()


@dataclass
class Stats:
    """What a shipper did since it started (shown by the collector's /health)."""

    inserts: int = 0
    rows: int = 0
    segments: int = 0
    transient_failures: int = 0
    splits: int = 0
    drops: DropLog | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "inserts": self.inserts,
            "rows": self.rows,
            "segments": self.segments,
            "transient_failures": self.transient_failures,
            "splits": self.splits,
            "dropped_segments": dict(self.drops.segments) if self.drops else {},
            "dropped_rows": dict(self.drops.rows) if self.drops else {},
            "drops_pending": len(self.drops.pending) if self.drops else 0,
        }


@dataclass
class TablePlan:
    """What is left to insert of one table of a batch."""

    todo: list[list[str]]
    done: list[list[str]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # segment name -> store's message
    # A batch begun by the previous shipper (one table, its own token): replayed as it was.
    legacy_part: list[str] = field(default_factory=list)
    legacy_token: str = ""

    def token(self, table: str, part: list[str]) -> str:
        """The deduplication token of one insert of this table."""
        if self.legacy_token and part == self.legacy_part:
            return self.legacy_token
        return batch_token(table, part)

    def as_json(self) -> dict[str, Any]:
        """Manifest form."""
        out: dict[str, Any] = {"todo": self.todo, "done": self.done, "rejected": self.rejected}
        if self.legacy_token:
            out.update(legacy_part=self.legacy_part, legacy_token=self.legacy_token)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> TablePlan:
        """Read back (names are checked by the layout)."""
        return cls(
            todo=[[check_key(n) for n in part] for part in raw["todo"]],
            done=[[check_key(n) for n in part] for part in raw["done"]],
            rejected={check_key(k): str(v) for k, v in raw["rejected"].items()},
            legacy_part=[check_key(n) for n in raw.get("legacy_part", [])],
            legacy_token=str(raw.get("legacy_token", "")),
        )


@dataclass
class Plan:
    """One batch: its token, its segments (keys) and a plan per table."""

    token: str
    names: list[str]
    tables: dict[str, TablePlan]
    manifest: Path | None = None

    def meta(self) -> dict[str, Any]:
        """The manifest's meta block."""
        return {"v": 1, "tables": {t: p.as_json() for t, p in sorted(self.tables.items())}}


class Shipper:
    """Moves segments from a spool directory into ClickHouse.

    Not thread-safe: one shipper per spool, driven by one thread (the collector's loop).

    Args:
        client: an open store client (``store.connect``); calls hold ``lock``.
        spool_dir: ``$STAGELOG_HOME/spool``.
        budget: the disk budget (None: none, e.g. for ``stagelog ingest``).
        max_batch_bytes: upper bound of the segment bytes in one batch.
        max_batch_segments: upper bound of the segments in one batch.
        lock: serialises use of ``client`` with other threads (the query endpoint).
        destination: how the store is named in log lines (no password).
        reserve: room held for manifests on a full disk (None: none).
    """

    def __init__(
        self,
        client: Client,
        spool_dir: Path,
        budget: Budget | None = None,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_segments: int = DEFAULT_MAX_BATCH_SEGMENTS,
        lock: threading.Lock | None = None,
        destination: str = "ClickHouse",
        reserve: Reserve | None = None,
    ) -> None:
        self.client = client
        self.reserve = reserve
        self.spool_dir = Path(spool_dir)
        self.budget = budget
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_segments = max_batch_segments
        self.lock = lock or threading.Lock()
        # Set while ship_all runs: other users of the store that can wait (the rollup job)
        # let it go first, so that a poll never waits for more than one of their steps.
        self.shipping = threading.Event()
        self.destination = destination
        self.drops = DropLog(self.spool_dir)
        self.stats = Stats(drops=self.drops)

    # ------------------------------------------------------------------ spool inspection

    def pending(self) -> int:
        """Number of complete segments waiting in the spool (drop counts not yet written too)."""
        return len(layout.list_segments(self.spool_dir)) + (1 if self.drops.pending else 0)

    def spool_bytes(self) -> int:
        """Bytes of complete segments in the spool."""
        return sum(r.size for r in layout.list_segments(self.spool_dir))

    def in_flight(self) -> set[str]:
        """Segment names in a manifest (a batch begun and not finished)."""
        names: set[str] = set()
        for path in self.manifests():
            try:
                names.update(self._read_manifest(path)[1])
            except (SpoolError, KeyError, TypeError, ValueError, AttributeError):
                continue
        return names

    def manifests(self) -> list[Path]:
        """Manifests of batches begun and not finished (a batch's lives in its first table)."""
        return [
            path
            for table in layout.tables(self.spool_dir)
            for path in layout.manifests(self.spool_dir, table)
        ]

    def _read_manifest(self, path: Path) -> tuple[str, list[str], dict[str, TablePlan]]:
        info = layout.read_manifest(path)
        if "keys" not in info:  # the previous shipper's: one table, its folder, its token
            table = layout.check_table(path.parent.name)
            keys = [f"{table}/{name}" for name in info["segments"]]
            plan = TablePlan(todo=[keys], legacy_part=keys, legacy_token=info["token"])
            return info["token"], keys, {table: plan}
        keys = [check_key(k) for k in info["keys"]]
        tables = {layout.check_table(str(t)): TablePlan.from_json(raw)
                  for t, raw in info["tables"].items()}
        return info["token"], keys, tables

    def _key(self, ref: layout.SegmentRef) -> str:
        return segment_key(self.spool_dir, ref)

    # ------------------------------------------------------------------ budget

    def enforce_budget(self) -> int:
        """Apply the disk budget (rows dropped, counted); also retries unwritten drop counts."""
        self.drops.flush()
        if self.budget is None:
            return 0
        dropped = self.budget.enforce(self.drops, protected=self.in_flight())
        if self.reserve is not None:
            self.reserve.ensure()
        return dropped

    # ------------------------------------------------------------------ shipping

    def ship_all(self, max_batches: int | None = None) -> int:
        """Ship what is in the spool now: unfinished batches first, then new ones, oldest first.

        Segments that arrive meanwhile wait for the next call, so that a steady stream of new
        segments cannot keep this call (and the collector's loop) from returning.

        Args:
            max_batches: stop after this many batches (None: until the snapshot is shipped).

        Returns:
            Rows inserted.

        Raises:
            StoreUnavailable: the store failed transiently; nothing was lost, retry later.
            SpoolFull: no room for a manifest yet; nothing was sent, retry later.
        """
        self.drops.flush()
        self.shipping.set()  # the rollup job waits before its next step (store.rollups)
        try:
            # Another thread using the store (a rollup step, an alert query) is waited out
            # before the spool is listed, so that what was flushed meanwhile ships now.
            with self.lock:
                pass
            rows = 0
            batches = 0
            for path in self.manifests():
                rows += self._replay(path)
                batches += 1
            busy = self.in_flight()
            snapshot = [
                r for r in layout.list_segments(self.spool_dir) if self._key(r) not in busy
            ]
            cap = self._batch_cap(sum(r.size for r in snapshot))
            while snapshot and (max_batches is None or batches < max_batches):
                batch, snapshot = self._take(snapshot, cap)
                rows += self._ship_new(batch)
                batches += 1
        finally:
            self.shipping.clear()
        self.drops.flush()
        return rows

    def _batch_cap(self, used: int) -> int:
        """Bytes per batch now: a batch in flight is never dropped, so at most 1/8 of the budget."""
        if self.budget is None:
            return self.max_batch_bytes
        return min(self.max_batch_bytes, max(MIN_BATCH_BYTES, self.budget.limit(used) // 8))

    def _take(
        self, refs: list[layout.SegmentRef], cap: int
    ) -> tuple[list[layout.SegmentRef], list[layout.SegmentRef]]:
        size = 0
        count = 0
        for ref in refs:
            if count and (size + ref.size > cap or count >= self.max_batch_segments):
                break
            size += ref.size
            count += 1
        return refs[:count], refs[count:]

    def _read(self, paths: dict[str, Path]) -> dict[str, dict[str, pa.Table]]:
        """Decode segments (by key); unreadable ones are set aside (counted) and left out."""
        data: dict[str, dict[str, pa.Table]] = {}
        for name, path in paths.items():
            try:
                data[name] = layout.read_segment(path)
            except SpoolError as exc:
                if not path.exists():
                    continue
                log.error("%s", exc)
                self._set_aside(name, path, None, sd.UNREADABLE, str(exc)[:2000])
        return data

    def _ship_new(self, refs: list[layout.SegmentRef]) -> int:
        paths = {self._key(r): r.path for r in refs}
        data = self._read(paths)
        names = [key for key in paths if key in data]
        if not names:
            return 0
        tables: dict[str, TablePlan] = {}
        for table in sorted({t for name in names for t in data[name]}):
            tables[table] = TablePlan(todo=[sorted(n for n in names if table in data[n])])
        plan = Plan(batch_token("batch", names), sorted(names), tables)
        # No insert without its manifest: after a crash the replay must send the same inserts.
        if not self._save(plan, required=True):
            raise SpoolFull(
                f"no room for a batch manifest in {self.spool_dir}; retrying after the budget "
                "frees space"
            )
        return self._execute(plan, data, paths)

    def _replay(self, manifest: Path) -> int:
        try:
            token, keys, tables = self._read_manifest(manifest)
        except (SpoolError, KeyError, TypeError, ValueError, AttributeError):
            # Written atomically, so this is outside damage; its segments are still in the
            # spool and go out in a new batch.
            log.warning("ignoring unreadable batch manifest %s", manifest)
            manifest.unlink(missing_ok=True)
            return 0
        plan = Plan(token, keys, tables, manifest)
        present = {self._key(r): r.path for r in layout.list_segments(self.spool_dir)}
        paths = {n: present[n] for n in plan.names if n in present}
        log.info("replaying batch %s (%d segments, %d present)", plan.token[:12],
                 len(plan.names), len(paths))
        data = self._read(paths)
        return self._execute(plan, data, paths)

    def _execute(
        self, plan: Plan, data: dict[str, dict[str, pa.Table]], paths: dict[str, Path]
    ) -> int:
        rows = 0
        for table, tplan in sorted(plan.tables.items()):
            while tplan.todo:
                part = tplan.todo[0]
                outcome, detail, n = self._insert_part(table, part, data, tplan.token(table, part))
                if outcome == "ok":
                    tplan.todo.pop(0)
                    tplan.done.append(part)
                    rows += n
                    continue
                tplan.todo.pop(0)
                if outcome == "split":
                    half = len(part) // 2
                    tplan.todo[:0] = [part[:half], part[half:]]
                    self.stats.splits += 1
                    log.warning("%s: %s of %d %s segments; shipping it in halves",
                                self.destination, detail[:500], len(part), table)
                else:  # one segment refused: set aside once the batch is done
                    tplan.rejected[part[0]] = detail
                # Before the next insert: a replay must send the same halves, same tokens.
                self._save(plan, required=False)
        self._finish(plan, data, paths)
        return rows

    def _insert_part(
        self, table: str, part: list[str], data: dict[str, dict[str, pa.Table]], token: str
    ) -> tuple[str, str, int]:
        """One insert; returns ("ok" | "split" | "rejected", detail, rows)."""
        pieces = [data[n][table] for n in part if n in data and table in data[n]]
        if not pieces:
            return "ok", "", 0  # every segment of it was already shipped (a replay)
        try:
            # segments of an older stagelog: plain strings where the schema has dictionaries
            pieces = [schemas.conform(table, piece) for piece in pieces]
            merged = pa.concat_tables(pieces, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if len(part) > 1:
                return "split", f"segments with incompatible columns ({exc})", 0
            raise  # one piece is never concatenated with anything
        if merged.num_rows == 0:
            return "ok", "", 0
        try:
            with self.lock:
                store.insert_arrow(
                    self.client,
                    f"{store.DATABASE}.{table}",
                    merged,
                    {**INSERT_SETTINGS, "insert_deduplication_token": token},
                )
        except (ClickHouseError, OSError) as exc:
            if store.is_transient(exc):
                self.stats.transient_failures += 1
                raise StoreUnavailable(
                    f"insert into {store.DATABASE}.{table} at {self.destination} failed: {exc}"
                ) from exc
            if len(part) > 1:
                return "split", f"{self.destination} refused an insert ({exc})", 0
            return "rejected", f"{self.destination} refused {merged.num_rows} rows: {exc}", 0
        self.stats.inserts += 1
        self.stats.rows += merged.num_rows
        return "ok", "", merged.num_rows

    def _finish(
        self, plan: Plan, data: dict[str, dict[str, pa.Table]], paths: dict[str, Path]
    ) -> None:
        refused: dict[str, list[str]] = {}
        for table, tplan in plan.tables.items():
            for name in tplan.rejected:
                refused.setdefault(name, []).append(table)
        for name in plan.names:
            path = paths.get(name)
            if path is None:
                continue
            if name in refused:
                self._set_aside(name, path, data.get(name), sd.REJECTED, "; ".join(
                    f"{t}: {plan.tables[t].rejected[name]}" for t in sorted(refused[name])
                ), only=refused[name])
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            self.stats.segments += 1
        self.drops.flush()
        if plan.manifest is not None:
            plan.manifest.unlink(missing_ok=True)

    def _save(self, plan: Plan, required: bool) -> bool:
        """Write the batch's manifest; on a full disk False (and, unless required, go on)."""
        for attempt in (1, 2):
            try:
                plan.manifest = self._write_manifest(plan)
                return True
            except (OSError, SpoolError) as exc:
                if not is_no_space(exc):
                    raise
                if attempt == 1 and self.reserve is not None and self.reserve.release():
                    continue
                log.warning("cannot write the batch manifest (%s)%s", exc,
                            "" if required else "; the bisection is deterministic, going on")
                return False
        return False

    def _write_manifest(self, plan: Plan) -> Path:
        """The batch's manifest, in the folder of its first table (the layout's place)."""
        anchor = sorted(plan.tables)[0]
        (self.spool_dir / layout.check_table(anchor)).mkdir(parents=True, exist_ok=True)
        files = sorted({key.rsplit("/", 1)[-1] for key in plan.names})
        return layout.write_manifest(
            self.spool_dir, anchor, plan.token, files, keys=plan.names, **plan.meta()
        )

    def _set_aside(
        self,
        name: str,
        path: Path,
        tables: dict[str, pa.Table] | None,
        reason: str,
        detail: str,
        only: list[str] | None = None,
    ) -> None:
        """Move a segment the store cannot take to ``spool/.rejected/``, its rows counted."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        target = self.spool_dir / REJECTED_DIR / check_key(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if only is not None:
            counted = sorted(only)
        elif tables is not None:
            counted = sorted(tables)
        else:
            try:
                counted = sorted(layout.segment_tables(path))  # rows unknown: not decodable
            except SpoolError:
                counted = ["(unknown)"]
        for table in counted:
            rows = tables[table].num_rows if tables and table in tables else 0
            self.drops.add(table, 1, rows, size if len(counted) == 1 else 0, reason,
                           f"{name}: {detail}")
        log.error("set aside segment %s (%s; %s): %s", name, reason, ", ".join(counted), detail)
        os.replace(path, target)
