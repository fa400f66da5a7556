"""The demo's alerts: its rule set, and waiting for a rule to fire or resolve in ClickHouse.

``configure()`` points a stack the demo starts at ``demo_alert_rules.toml`` (windows of
seconds) and a one-second evaluation period, unless the environment already names others.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from logging_backend import config
from logging_backend.insights import metrics

RULES = Path(__file__).with_name("demo_alert_rules.toml")
INTERVAL_MS = "1000"


def configure() -> None:
    """Set the demo's rules and period for the collector the demo is about to start."""
    os.environ.setdefault(config.ALERT_RULES, str(RULES))
    os.environ.setdefault(config.ALERT_INTERVAL_MS, INTERVAL_MS)


def wait_state(
    query: metrics.Query, rule: str, state: str, since: datetime, timeout_s: float = 60.0
) -> dict[str, Any] | None:
    """The first ``state`` transition of ``rule`` at or after ``since``, waiting for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = query(
            "SELECT toString(alerts.ts) AS at, rule, state, round(value, 3) AS value, message "
            "FROM stagelog.alerts WHERE rule = {rule:String} AND state = {state:String} "
            "AND ts >= {since:DateTime64(6, 'UTC')} ORDER BY ts LIMIT 1",
            {"rule": rule, "state": state, "since": metrics.ts_param(since)},
        )
        if rows or time.monotonic() > deadline:
            return rows[0] if rows else None
        time.sleep(0.25)


def print_transitions(console: Console, query: metrics.Query, since: datetime) -> None:
    """The alert transitions since ``since``, as stored in ``stagelog.alerts``."""
    rows = query(
        "SELECT toString(alerts.ts) AS at, rule, state, severity, round(value, 3) AS value, "
        "message "
        "FROM stagelog.alerts WHERE ts >= {since:DateTime64(6, 'UTC')} ORDER BY ts",
        {"since": metrics.ts_param(since)},
    )
    table = Table(title="stagelog.alerts: transitions during the demo", title_justify="left")
    columns = ("at", "rule", "state", "severity", "value", "message")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)
