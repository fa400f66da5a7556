"""The collector's own health as Prometheus metrics (``metrics_url`` in ``run/collector.json``).

Figures, read at scrape time (``stagelog status`` prints the same through ``snapshot()``):

- ``stagelog_spool_pending_segments``, ``stagelog_spool_pending_bytes``,
  ``stagelog_spool_oldest_segment_age_seconds``: what waits in the spool;
- ``stagelog_shipped_rows_total{table}``, ``stagelog_shipped_inserts_total{table}``,
  ``stagelog_insert_failures_total{table}``, ``stagelog_last_successful_insert_timestamp_seconds``:
  counted on the inserts the shipper sends (``CountingClient`` wraps its client);
- ``stagelog_dropped_segments_total{reason}``, ``stagelog_dropped_rows_total{table}``,
  ``stagelog_transient_failures_total``: the shipper's own counters;
- ``stagelog_queries_total``, ``stagelog_queries_refused_total``: the query door.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from logging_backend import store
from logging_backend.spool import layout

SEGMENT_SUFFIXES = (layout.SEGMENT_SUFFIX, layout.CONTAINER_SUFFIX)  # v1 per table, v2 per flush


class InsertCounts:
    """Rows, inserts and failures per table, and when the last insert succeeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: Counter[str] = Counter()
        self.inserts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.last_success: float | None = None

    def ok(self, table: str, rows: int) -> None:
        """Count one successful insert of ``rows`` rows into ``table``."""
        with self._lock:
            self.rows[table] += rows
            self.inserts[table] += 1
            self.last_success = time.time()

    def failed(self, table: str) -> None:
        """Count one failed insert into ``table``."""
        with self._lock:
            self.failures[table] += 1

    def copy(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], float | None]:
        """``(rows, inserts, failures, last_success)`` at one instant."""
        with self._lock:
            return dict(self.rows), dict(self.inserts), dict(self.failures), self.last_success


class CountingClient:
    """A clickhouse-connect client that counts the shipper's inserts (everything else as is)."""

    def __init__(self, client: Any, counts: InsertCounts) -> None:
        self._client = client
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def insert_arrow(
        self, table: str, arrow_table: Any, settings: dict[str, Any] | None = None
    ) -> None:
        """:func:`logging_backend.store.insert_arrow` into the wrapped client, counted."""
        name = table.split(".")[-1].strip("`")
        try:
            store.insert_arrow(self._client, table, arrow_table, settings)
        except Exception:
            self._counts.failed(name)
            raise
        self._counts.ok(name, int(getattr(arrow_table, "num_rows", 0)))


def spool_pending(spool_dir: Path, now: float | None = None) -> tuple[int, int, float]:
    """``(segments, bytes, age of the oldest in seconds)`` waiting in ``spool_dir``.

    Segments are the ``*.arrow`` (v1) and ``*.seg`` (v2) files of the spool, outside hidden
    folders (set-aside segments and temporary files are not pending).
    """
    count = size = 0
    oldest: float | None = None
    for root, dirs, files in os.walk(spool_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.endswith(SEGMENT_SUFFIXES) or name.startswith("."):
                continue
            try:
                stat = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # shipped meanwhile
            count += 1
            size += stat.st_size
            oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
    age = 0.0 if oldest is None else max(0.0, (now or time.time()) - oldest)
    return count, size, age


class Health:
    """Everything the collector reports about itself.

    Args:
        spool_dir: the spool the collector ships.
        counts: the inserts counted on the shipper's client.
        shipper_stats: returns the shipper's ``stats.as_dict()`` (None before it exists).
        door_stats: returns ``(queries, refused)`` of the query door.
    """

    def __init__(
        self,
        spool_dir: Path,
        counts: InsertCounts,
        shipper_stats: Callable[[], dict[str, Any] | None],
        door_stats: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.spool_dir = spool_dir
        self.counts = counts
        self.shipper_stats = shipper_stats
        self.door_stats = door_stats
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def snapshot(self) -> dict[str, Any]:
        """The figures as one JSON-ready dict."""
        segments, size, age = spool_pending(self.spool_dir)
        stats = self.shipper_stats() or {}
        if stats.get("drops_pending"):
            segments += 1  # drop counts waiting in memory become a segment: pending too
        queries, refused = self.door_stats()
        rows, inserts, failures, last_success = self.counts.copy()
        return {
            "pending_segments": segments,
            "pending_bytes": size,
            "oldest_segment_age_s": round(age, 3),
            "rows_by_table": rows,
            "inserts_by_table": inserts,
            "failures_by_table": failures,
            "last_successful_insert": last_success,
            "transient_failures": int(stats.get("transient_failures", 0)),
            "dropped_segments": dict(stats.get("dropped_segments") or {}),
            "dropped_rows": dict(stats.get("dropped_rows") or {}),
            "queries": queries,
            "queries_refused": refused,
            "stats": stats,  # the shipper's own counters, as it reports them
        }

    def collect(self) -> Any:
        """prometheus-client's custom collector hook: one family per figure."""
        snap = self.snapshot()
        yield GaugeMetricFamily("stagelog_spool_pending_segments",
                                "Segments waiting in the spool", value=snap["pending_segments"])
        yield GaugeMetricFamily("stagelog_spool_pending_bytes",
                                "Bytes waiting in the spool", value=snap["pending_bytes"])
        yield GaugeMetricFamily("stagelog_spool_oldest_segment_age_seconds",
                                "Age of the oldest pending segment",
                                value=snap["oldest_segment_age_s"])
        for name, key, doc in (
            ("stagelog_shipped_rows", "rows_by_table", "Rows inserted into the store"),
            ("stagelog_shipped_inserts", "inserts_by_table", "Inserts that succeeded"),
            ("stagelog_insert_failures", "failures_by_table", "Inserts that failed"),
            ("stagelog_dropped_rows", "dropped_rows", "Rows dropped by the spool budget"),
        ):
            family = CounterMetricFamily(name, doc, labels=["table"])
            for table, value in sorted(snap[key].items()):
                family.add_metric([table], value)
            yield family
        drops = CounterMetricFamily("stagelog_dropped_segments",
                                    "Segments dropped, by reason", labels=["reason"])
        for reason, value in sorted(snap["dropped_segments"].items()):
            drops.add_metric([reason], value)
        yield drops
        yield CounterMetricFamily("stagelog_transient_failures",
                                  "Shipping attempts that failed transiently",
                                  value=snap["transient_failures"])
        last = snap["last_successful_insert"]
        yield GaugeMetricFamily("stagelog_last_successful_insert_timestamp_seconds",
                                "Unix time of the last successful insert (0: none yet)",
                                value=last or 0)
        yield CounterMetricFamily("stagelog_queries", "Queries answered by the query door",
                                  value=snap["queries"])
        yield CounterMetricFamily("stagelog_queries_refused",
                                  "Queries the query door refused", value=snap["queries_refused"])

    def row(self, host: str, pid: int) -> tuple[list[str], list[Any]]:
        """The figures as one ``stagelog.collector_health`` row: ``(column names, values)``."""
        snap = self.snapshot()
        last = snap["last_successful_insert"]
        values = {
            "ts": datetime.now(timezone.utc),
            "host": host,
            "pid": pid,
            "pending_segments": snap["pending_segments"],
            "pending_bytes": snap["pending_bytes"],
            "oldest_segment_age_s": snap["oldest_segment_age_s"],
            "rows_shipped": sum(snap["rows_by_table"].values()),
            "inserts": sum(snap["inserts_by_table"].values()),
            "insert_failures": sum(snap["failures_by_table"].values()),
            "transient_failures": snap["transient_failures"],
            "dropped_segments": sum(snap["dropped_segments"].values()),
            "last_insert_age_s": None if last is None else max(0.0, time.time() - last),
            "queries": snap["queries"],
            "queries_refused": snap["queries_refused"],
            "rows_by_table": snap["rows_by_table"],
            "drops_by_reason": snap["dropped_segments"],
        }
        return list(values), list(values.values())

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
