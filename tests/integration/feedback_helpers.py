"""Waiting for rows that travel stage -> spool -> collector -> store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from logging_backend.insights import metrics
from logging_backend.stack import query as stack_query

LAND_TIMEOUT_S = 60.0


def query_for(stack: Any) -> metrics.Query:
    """A Query on the running stack's store (through the collector's endpoint)."""
    return stack_query.settings_query(stack.settings)


def wait_for(
    query: metrics.Query,
    sql: str,
    params: dict[str, Any] | None,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = LAND_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Run ``sql`` until ``done(rows)`` or the timeout; returns the last rows either way."""
    deadline = time.monotonic() + timeout
    while True:
        rows = query(sql, params)
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)
