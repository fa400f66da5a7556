"""The collector process `stagelog up` starts: the collector, the alert evaluator, the rollups.

``python -m logging_backend.stack.collector_process`` runs ``logging_backend.collector`` with
one task: a thread (``insights.alerts.AlertThread``) that loads the drift baseline of the model
repository once (so that the hourly feature rollup bins from the first row) and then evaluates
the alert rules every ``STAGELOG_ALERT_INTERVAL_MS``, through the collector's own store client
(the embedded store can be opened by one process only). ``python -m logging_backend.collector``
alone ships and answers queries without alerts. A third task rolls up the rows shipped
since its last run into the rollups (hourly, ``request_index``, ``stage_latency_1m``) every
``STAGELOG_ROLLUP_INTERVAL_MS`` (``logging_backend.store.rollups``), once more after the final
drain; the alert thread runs the latency rollup itself right before each evaluation.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from logging_backend import config
from logging_backend.collector.__main__ import main as collector_main
from logging_backend.insights import alerts, metrics
from logging_backend.store import rollups

_BASELINE_LOCK = threading.Lock()  # the alert and rollup threads both need it loaded, once


def _ensure_baseline(query: Any) -> int:
    with _BASELINE_LOCK:
        return metrics.ensure_baseline(query)


def _query_of(collector: Any) -> Any:
    """Rows of SQL run on the collector's own client (serialised with shipping)."""

    def query(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return metrics.parse_rows(collector.query(sql, params, "JSONEachRow"))

    return query


def start_alerts(collector: Any) -> alerts.AlertThread | None:
    """Start the alert thread on ``collector``'s store; returns it (stopped at the end).

    ``STAGELOG_ALERT_INTERVAL_MS=0`` starts none: with several hosts writing to one store, one
    collector evaluating the rules is enough.
    """
    settings: config.Settings = collector.settings
    if settings.alert_interval_ms == 0:
        return None

    query = _query_of(collector)
    return alerts.AlertThread(
        query, settings.alert_interval_ms / 1000,
        prepare=lambda: _ensure_baseline(query),
        rules_path=settings.alert_rules or None,
        before_each=_latency_rollup(collector),
    ).start()


def _latency_rollup(collector: Any) -> Any:
    """What brings ``stage_latency_1m`` up to date before the rules are evaluated, if anything.

    The latency alert reads that rollup, which the rollup job fills (migration 0092): run for
    it alone right before each evaluation, the alert sees every event shipped by then. None
    where the rollup job does not run (``STAGELOG_ROLLUP_INTERVAL_MS=0``, a cluster).
    """
    settings = collector.settings
    if settings.rollup_interval_ms == 0 or settings.cluster:
        return None

    def run() -> int:
        with collector.lock:  # the rollup thread holds it too: never two runs at once
            return rollups.run_once(collector.client, (rollups.STAGE_LATENCY,))

    return run


def start_rollups(collector: Any) -> rollups.RollupThread | None:
    """Start the rollup thread on ``collector``'s store client; returns it (stopped at the end).

    None with ``STAGELOG_ROLLUP_INTERVAL_MS=0`` (one process per store rolls up) and on a
    cluster (block numbers are per shard there; the rollups are not made, and it is logged).
    """
    settings = collector.settings
    if settings.rollup_interval_ms == 0:
        return None
    if settings.cluster:
        rollups.log.warning(
            "hourly rollups are not made on a cluster (%s): block numbers are per shard",
            settings.cluster,
        )
        return None

    query = _query_of(collector)
    shipper = getattr(collector, "shipper", None)
    return rollups.RollupThread(
        collector.client, collector.lock, settings.rollup_interval_ms / 1000.0,
        prepare=lambda: _ensure_baseline(query),
        yield_to=shipper.shipping if shipper is not None else None,
    ).start()  # fmt: skip


def main() -> int:
    """Run the collector with the alert evaluator and the rollups until SIGTERM/SIGINT."""
    return collector_main(tasks=[start_alerts, start_rollups])


if __name__ == "__main__":
    sys.exit(main())
