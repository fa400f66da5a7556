"""The collector process `stagelog up` starts: the collector, plus the alert evaluator.

``python -m logging_backend.stack.collector_process`` runs ``logging_backend.collector`` with
one task: a thread (``insights.alerts.AlertThread``) that loads the drift baseline of the model
repository once (so that the hourly feature rollup bins from the first row) and then evaluates
the alert rules every ``STAGELOG_ALERT_INTERVAL_MS``, through the collector's own store client
(the embedded store can be opened by one process only). ``python -m logging_backend.collector``
alone ships and answers queries without alerts.
"""

from __future__ import annotations

import sys
from typing import Any

from logging_backend import config
from logging_backend.collector.__main__ import main as collector_main
from logging_backend.insights import alerts, metrics


def start_alerts(collector: Any) -> alerts.AlertThread | None:
    """Start the alert thread on ``collector``'s store; returns it (stopped at the end).

    ``STAGELOG_ALERT_INTERVAL_MS=0`` starts none: with several hosts writing to one store, one
    collector evaluating the rules is enough.
    """
    settings: config.Settings = collector.settings
    if settings.alert_interval_ms == 0:
        return None

    def query(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return metrics.parse_rows(collector.query(sql, params, "JSONEachRow"))

    return alerts.AlertThread(
        query, settings.alert_interval_ms / 1000,
        prepare=lambda: metrics.ensure_baseline(query),
        rules_path=settings.alert_rules or None,
    ).start()


def main() -> int:
    """Run the collector with the alert evaluator until SIGTERM/SIGINT."""
    return collector_main(tasks=[start_alerts])


if __name__ == "__main__":
    sys.exit(main())
