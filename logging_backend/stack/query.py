"""What `stagelog sql`, `lineage` and `migrate` do, apart from argument parsing.

A chDB store can be opened by one process only: while the collector of a home runs, queries go
through its query door — ClickHouse's HTTP interface (``http_url``, ``user`` and
``password_file`` in ``$STAGELOG_HOME/run/collector.json``), read by clickhouse-connect's own HTTP
client, the same client and code path as for a ClickHouse server; otherwise the store is opened
directly. A ClickHouse server DSN is always queried directly.
"""

from __future__ import annotations

import json
import os
import time
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
from logging_backend.store import access, guard


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
    settings: config.Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    fmt: str,
    read_only: bool = False,
) -> bytes:
    """Run one statement against the home's store and return the result in ClickHouse ``fmt``.

    Args:
        settings: the home's settings.
        sql: one statement.
        params: ``{name:Type}`` values.
        fmt: a ``--format`` value.
        read_only: the statement comes from a person (``stagelog sql``): it must pass the
            reader's guard (``logging_backend.store.guard``) and runs with ``readonly = 1``,
            also when the store is opened directly (the query door checks it anyway).

    Raises:
        StoreError: the statement failed, was refused, or the store cannot be reached.
    """
    fmt = store.clickhouse_format(fmt)
    info = uses_collector(settings)
    if read_only:
        sql = guard.single_statement(sql)
    elif info is not None and collector.ADMIN_WRITE.match(sql):
        # A note or a baseline: the collector writes it (the query door is read-only).
        ask_collector(settings, info, {"kind": "write", "sql": sql, "params": dict(params or {})})
        return b""
    if info is not None:
        return store.run_query(door_client(settings, info), sql, dict(params or {}), fmt)
    client = store.connect(settings.dsn)
    if not read_only:
        return store.run_query(client, sql, dict(params or {}), fmt)
    readonly = {"readonly": 1}
    names = store.run_query(client, "SELECT name FROM system.table_functions", None, "TSVRaw",
                            readonly)
    guard.check(
        sql,
        lambda statement: store.run_query(
            client, "EXPLAIN AST " + statement, dict(params or {}), "TSVRaw", readonly
        ).decode(),
        frozenset(names.decode().lower().split()),
    )
    return store.run_query(client, sql, dict(params or {}), fmt, readonly)


def door_client(settings: config.Settings, info: Mapping[str, Any]) -> Any:
    """A clickhouse-connect HTTP client on the running collector's query door.

    Raises:
        StoreError: collector.json names no door, or the door refuses the credentials.
    """
    url = info.get("http_url")
    if not url:
        raise StoreError(
            f"the collector of {settings.home} serves no query door (an old collector? restart "
            "the stack with `stagelog down` and `stagelog up`)"
        )
    credentials = access.load(settings)
    return store.connect_http(url, credentials.user, credentials.password)


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


ADMIN_WAIT_S = 60.0


def ask_collector(
    settings: config.Settings, info: Mapping[str, Any], request: dict[str, Any],
    wait_s: float = ADMIN_WAIT_S,
) -> dict[str, Any]:
    """Hand an admin request to the running collector (run/admin) and wait for its answer.

    Raises:
        StoreError: the collector refused it, failed, or did not answer in ``wait_s``.
    """
    directory = collector.admin_dir(settings.home)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}"
    path = directory / f"{name}.request.json"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(request, handle)
    os.rename(tmp, path)
    answer_path = directory / f"{name}.answer.json"
    deadline = time.monotonic() + wait_s
    while not answer_path.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            raise StoreError(f"the collector (pid {info['pid']}) did not answer in {wait_s:.0f}s")
        time.sleep(0.05)
    answer = json.loads(answer_path.read_text(encoding="utf-8"))
    answer_path.unlink(missing_ok=True)
    if answer.get("error"):
        raise StoreError(f"the collector refused or failed: {answer['error']}")
    return answer


def migrate(settings: config.Settings) -> dict[str, Any]:
    """Apply pending migrations and recreate every schema object the store lacks.

    While a collector holds the home's chDB store, it does the work (``ask_collector``).

    Returns:
        ``{"applied": [migration files], "recreated": ["db.name", ...], "by": "collector" or
        "direct"}``.

    Raises:
        StoreError: a statement failed, or the collector did not answer.
    """
    info = uses_collector(settings)
    if info is None:
        client = store.connect(settings.dsn)
        applied = store.migrate(client)
        return {"applied": applied, "recreated": store.repair(client), "by": "direct"}
    answer = ask_collector(settings, info, {"kind": "migrate"})
    return {"applied": answer["applied"], "recreated": answer["recreated"], "by": "collector"}


def settings_query(settings: config.Settings) -> metrics.Query:
    """A ``Query`` on the store of ``settings``' home: via the collector while it runs.

    Applies pending migrations first when the store is opened directly (a running collector
    applied them at its start).
    """
    if uses_collector(settings) is None:
        migrate(settings)

    def run(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return metrics.parse_rows(execute(settings, sql, params, "JSONEachRow"))

    return run
