"""What `stagelog sql`, `lineage` and `migrate` do, apart from argument parsing.

A chDB store can be opened by one process only: while the collector of a home runs, queries go
to its endpoint (``query_url`` in ``$STAGELOG_HOME/run/collector.json``); otherwise the store is
opened directly. A ClickHouse server DSN is always queried directly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from logging_backend import config, store
from logging_backend.collector import service as collector
from logging_backend.errors import StoreError
from logging_backend.insights import metrics, notes
from logging_backend.insights.lineage import LINEAGE_SQL


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """Turn ``["k=v", ...]`` into ``{"k": "v"}``.

    Raises:
        StoreError: an item has no ``=``.
    """
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise StoreError(f"--param {pair!r} is not KEY=VALUE")
        params[key] = value
    return params


def uses_collector(settings: config.Settings) -> dict[str, Any] | None:
    """The running collector's info when it holds the home's embedded store, else None."""
    if store.chdb_path(settings.dsn) is None:
        return None
    return collector.read_info(settings.home)


def execute(
    settings: config.Settings, sql: str, params: Mapping[str, Any] | None, fmt: str
) -> bytes:
    """Run one statement against the home's store and return the result in ClickHouse ``fmt``.

    Raises:
        StoreError: the statement failed or the store cannot be reached.
    """
    fmt = store.clickhouse_format(fmt)
    info = uses_collector(settings)
    if info is not None:
        return _post(info["query_url"], {"query": sql, "params": dict(params or {}), "format": fmt})
    client = store.connect(settings.dsn)
    return store.run_query(client, sql, dict(params or {}), fmt)


def _post(base_url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(
        base_url.rstrip("/") + "/query",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise StoreError(message) from exc
    except OSError as exc:
        raise StoreError(
            f"the collector's query endpoint {base_url} did not answer: {exc}"
        ) from exc


def render_table(result: bytes, console: Console, title: str | None = None) -> None:
    """Print a ClickHouse ``JSONCompact`` result as a table."""
    doc = json.loads(result.decode("utf-8", errors="replace"))
    table = Table(title=title, show_lines=False)
    for column in doc["meta"]:
        table.add_column(column["name"], overflow="fold")
    for row in doc["data"]:
        table.add_row(*(Text(_cell(value)) for value in row))
    console.print(table)
    console.print(f"{doc.get('rows', len(doc['data']))} rows", style="dim")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def lineage(
    settings: config.Settings, request_id: str, console: Console, max_chars: int | None = 600
) -> int:
    """Print every arrow of one request in pipeline order, one section per stage.

    Args:
        settings: the home's settings.
        request_id: the request.
        console: where to print.
        max_chars: cut each value after this many characters (None: print all).

    Returns:
        Number of lines printed (0 when the request is unknown).
    """
    doc = json.loads(
        execute(settings, LINEAGE_SQL, {"request_id": request_id}, "JSONCompact").decode(
            "utf-8", errors="replace"
        )
    )
    rows = doc["data"]
    if not rows:
        console.print(f"no records of request {request_id!r}", style="yellow")
        return 0
    table = Table(title=f"lineage of request {request_id}", show_lines=False)
    table.add_column("stage", style="bold", no_wrap=True)
    table.add_column("arrow", style="cyan", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("row", style="dim", justify="right")
    table.add_column("detail", style="dim", overflow="fold")
    table.add_column("value", overflow="fold", ratio=1)
    previous_stage = None
    for step, stage, kind, name, row, detail, value, ts in rows:
        first = stage != previous_stage
        if previous_stage is not None and first:
            table.add_section()
        previous_stage = stage
        value_style = "red" if kind == "event" and "status=error" in (value or "") else ""
        if kind == "event":
            detail = f"{detail} at {ts}"
        value = value or ""
        if max_chars is not None and len(value) > max_chars:
            value = f"{value[:max_chars]}… ({len(value) - max_chars} more characters; --full)"
        table.add_row(
            f"{step} {stage}" if first else "", kind, name, "" if row is None else str(row),
            detail, Text(value, style=value_style),
        )
    console.print(table)
    _print_notes(settings, [r[7] for r in rows if r[2] not in ("action", "label")], console)
    return len(rows)


def _print_notes(settings: config.Settings, stamps: list[str], console: Console) -> None:
    """Print the notes (arrow 10) in effect while the request was served."""
    if not stamps:
        return
    times = [datetime.fromisoformat(t).replace(tzinfo=timezone.utc) for t in stamps]

    def run(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        text = execute(settings, sql, params, "JSONEachRow").decode("utf-8", errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    found = notes.overlapping(run, min(times), max(times))
    if found:
        console.print("notes in effect:", style="bold")
        for line in notes.format_lines(found):
            console.print(f"  {line}", markup=False)


def migrate(settings: config.Settings) -> list[str] | None:
    """Apply pending migrations to the home's store.

    Returns:
        The files applied, or None when a running collector holds the chDB store (it applied
        them at start).
    """
    if uses_collector(settings) is not None:
        return None
    return store.migrate(store.connect(settings.dsn))


def settings_query(settings: config.Settings) -> metrics.Query:
    """A ``Query`` on the store of ``settings``' home: via the collector while it runs.

    Applies pending migrations first when the store is opened directly.
    """
    migrate(settings)

    def run(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return metrics.parse_rows(execute(settings, sql, params, "JSONEachRow"))

    return run
