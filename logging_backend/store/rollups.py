"""The rollups, made in batches: each row rolled up exactly once, however late it arrives.

Migration 0072 filled ``feature_rollup_1h``, ``field_rollup_1h`` and ``prediction_rollup_1h``
by materialized views on every insert; migration 0090 replaced them with this job, which is
several times cheaper per row (bench/results/store-cost-*.txt). Migration 0092 did the same for
``request_index`` and ``stage_latency_1m`` (two views on every ``stage_events`` insert). Every
run, per rollup and per partition of its source table:

1. the rows to roll up are those inserted since the last run: insert block numbers
   (``_block_number``, kept by the source tables since 0090) above the range already done and
   at most the partition's highest block now (a block is visible once numbered, so nothing
   below it can still appear);
2. a ``begun`` row in ``rollup_progress`` records the range, then the rollup's SELECT
   (``rollup_sql/<rollup>.sql``) is inserted with a deduplication token derived from the range,
   then a ``done`` row;
3. a range ``begun`` and not ``done`` (the process died in between) is inserted again with the
   same token first: the store drops it if the first insert had landed.

One process per store runs it (the stack's collector; ``STAGELOG_ROLLUP_INTERVAL_MS=0``
elsewhere): two running at once could number the same rows in two different ranges. It does
not run on a cluster (``STAGELOG_CLUSTER``): block numbers are per shard there.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from logging_backend.store.client import DATABASE

log = logging.getLogger("stagelog.rollups")

SQL_DIR = Path(__file__).with_name("rollup_sql")
PROGRESS = f"{DATABASE}.rollup_progress"
# Ranges on record per rollup and partition beyond which they are folded into one (one DELETE
# of a few hundred rows; at a run every 20 s, STAGELOG_ROLLUP_INTERVAL_MS's default, about every
# half hour of load).
COMPACT_RANGES = 100


@dataclass(frozen=True)
class Rollup:
    """One rollup: the table it reads and the table it fills."""

    name: str
    source: str

    @property
    def target(self) -> str:
        """The rollup table (its name)."""
        return f"{DATABASE}.{self.name}"

    def select(self) -> str:
        """Its SELECT over one block range of one partition of the source."""
        return _sql(self.name)


@functools.cache
def _sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


# stage_latency_1m feeds the latency alert: the alert thread runs it right before each
# evaluation (collector_process), as well as every period here.
STAGE_LATENCY = Rollup("stage_latency_1m", "stage_events")
ROLLUPS = (
    Rollup("feature_rollup_1h", "stage_tensors"),
    Rollup("field_rollup_1h", "stage_tensors"),
    Rollup("prediction_rollup_1h", "predictions"),
    Rollup("request_index", "stage_events"),  # migration 0092: no longer a view per insert
    STAGE_LATENCY,
)


@dataclass(frozen=True)
class Range:
    """Rows of one partition with ``block_from < _block_number <= block_to``."""

    rollup: str
    partition_id: str
    block_from: int
    block_to: int

    def token(self) -> str:
        """The deduplication token of its insert."""
        return f"rollup:{self.rollup}:{self.partition_id}:{self.block_from}:{self.block_to}"


def _rows(client: Client, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
    return list(client.query(sql, parameters=params or {}).result_rows)


def _tops(client: Client, source: str) -> dict[str, int]:
    """The highest insert block number per partition of ``source`` now."""
    rows = _rows(
        client,
        "SELECT partition_id, max(max_block_number) FROM system.parts "
        "WHERE database = {db:String} AND table = {table:String} AND active "
        "GROUP BY partition_id",
        {"db": DATABASE, "table": source},
    )
    return {str(p): int(top) for p, top in rows}


def _progress(
    client: Client, rollup: str
) -> tuple[dict[str, int], list[Range], dict[str, int]]:
    """What ``rollup_progress`` says of one rollup.

    Returns:
        Per partition the highest block rolled up (or begun); the ranges begun and not done;
        per partition the ranges on record (what :func:`_compact` folds).
    """
    rows = _rows(
        client,
        f"SELECT partition_id, block_from, block_to, groupUniqArray(state) FROM {PROGRESS} "
        "WHERE rollup = {rollup:String} GROUP BY partition_id, block_from, block_to",
        {"rollup": rollup},
    )
    marks: dict[str, int] = {}
    open_ranges: list[Range] = []
    ranges: dict[str, int] = {}
    for partition, block_from, block_to, states in rows:
        partition, block_to = str(partition), int(block_to)
        marks[partition] = max(marks.get(partition, 0), block_to)
        ranges[partition] = ranges.get(partition, 0) + 1
        if "done" not in states:
            open_ranges.append(Range(rollup, partition, int(block_from), block_to))
    return marks, open_ranges, ranges


def _compact(client: Client, rollup: str, partition: str, mark: int) -> None:
    """Fold a partition's done ranges up to ``mark`` into one ``done`` row ``(0, mark]``.

    Every run adds two rows per partition with new rows, and each run reads them all: without
    this, ``rollup_progress`` would grow by ~14,000 rows a day at load and every run would read
    more. Only done ranges are folded (it runs when none is open), the folded row goes in
    first, and a run that dies between the two steps leaves rows that say the same thing.
    """
    folded = Range(rollup, partition, 0, mark)
    _mark(client, folded, "done")
    client.command(
        f"DELETE FROM {PROGRESS} WHERE rollup = {{rollup:String}} "
        "AND partition_id = {partition:String} AND block_to <= {mark:Int64} "
        "AND NOT (block_from = 0 AND block_to = {mark:Int64})",
        parameters={"rollup": rollup, "partition": partition, "mark": mark},
    )


def _mark(client: Client, rng: Range, state: str) -> None:
    client.command(
        f"INSERT INTO {PROGRESS} (rollup, partition_id, block_from, block_to, state) "
        "SETTINGS insert_deduplicate = 1, insert_deduplication_token = {token:String} "
        "VALUES ({rollup:String}, {partition:String}, {lo:Int64}, {hi:Int64}, {state:String})",
        parameters={
            "token": f"{rng.token()}:{state}",
            "rollup": rng.rollup,
            "partition": rng.partition_id,
            "lo": rng.block_from,
            "hi": rng.block_to,
            "state": state,
        },
    )


def _roll(client: Client, rollup: Rollup, rng: Range) -> None:
    client.command(
        f"INSERT INTO {rollup.target} SETTINGS async_insert = 0, insert_deduplicate = 1, "
        "insert_deduplication_token = {token:String} "
        + rollup.select(),
        parameters={
            "token": rng.token(),
            "partition": rng.partition_id,
            "block_from": rng.block_from,
            "block_to": rng.block_to,
        },
    )


def run_once(client: Client, rollups: tuple[Rollup, ...] = ROLLUPS) -> int:
    """Roll up every row inserted since the last run; returns the ranges rolled up.

    Raises:
        clickhouse_connect's errors: the store failed; what was begun is finished next run.
    """
    ranges = 0
    for rollup in rollups:
        marks, open_ranges, on_record = _progress(client, rollup.name)
        for rng in open_ranges:  # interrupted: the same insert, the same token
            log.info("finishing the interrupted rollup range %s", rng.token())
            _roll(client, rollup, rng)
            _mark(client, rng, "done")
            ranges += 1
        for partition, top in sorted(_tops(client, rollup.source).items()):
            done = marks.get(partition, 0)
            if top <= done:
                continue
            rng = Range(rollup.name, partition, done, top)
            _mark(client, rng, "begun")
            _roll(client, rollup, rng)
            _mark(client, rng, "done")
            ranges += 1
            marks[partition] = top
            on_record[partition] = on_record.get(partition, 0) + 1
        for partition, count in sorted(on_record.items()):
            if count > COMPACT_RANGES:  # every range on record is done by now
                _compact(client, rollup.name, partition, marks[partition])
    return ranges


YIELD_MAX_S = 30.0  # the longest a rollup step waits for shipping before it runs anyway


class RollupThread:
    """Runs :func:`run_once` every ``interval_s`` on a client shared under ``lock``.

    Args:
        client: the process's store client.
        lock: held around each rollup of a run, released between them (the collector ships on
            the same client: it waits for one rollup, not for the whole run).
        interval_s: seconds between runs.
        prepare: called once before the first run (the collector loads the drift baseline,
            whose bins the feature rollup counts in).
        yield_to: set while the collector ships: each rollup step waits until it is clear
            (for at most ``YIELD_MAX_S``), so that freshness pays for one step at most.
    """

    def __init__(
        self,
        client: Client,
        lock: threading.Lock,
        interval_s: float,
        prepare: Callable[[], Any] | None = None,
        yield_to: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.yield_to = yield_to
        self.lock = lock
        self.interval_s = interval_s
        self.prepare = prepare
        self.stop_event = threading.Event()
        self.runs = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name="stagelog-rollups", daemon=True)

    def start(self) -> RollupThread:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the run in progress, then roll up once more (rows shipped at the end)."""
        self.stop_event.set()
        self._thread.join(timeout)
        self._run()

    def _run(self) -> None:
        started = time.monotonic()
        ranges = 0
        try:
            for rollup in ROLLUPS:
                self._let_shipping_go()
                with self.lock:
                    ranges += run_once(self.client, (rollup,))
        except Exception:  # a failed run is retried next period; what was begun is finished
            self.failures += 1
            log.exception("rollup run failed; retrying in %.0f s", self.interval_s)
            return
        self.runs += 1
        if ranges:
            log.debug("rolled up %d ranges in %.2f s", ranges, time.monotonic() - started)

    def _let_shipping_go(self) -> None:
        deadline = time.monotonic() + YIELD_MAX_S
        while self.yield_to is not None and self.yield_to.is_set():
            if time.monotonic() > deadline:  # a shipper stuck on a store that is down
                return
            time.sleep(0.01)

    def _loop(self) -> None:
        if self.prepare is not None:
            try:
                self.prepare()
            except Exception:
                log.exception("rollup preparation failed; rolling up without it")
        while not self.stop_event.wait(self.interval_s):
            self._run()
