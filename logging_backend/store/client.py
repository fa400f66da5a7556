"""The ClickHouse store: one code path (clickhouse-connect) for embedded chDB and a server.

``connect(dsn)`` opens ``chdb://<path>`` (embedded; one process per data path) or
``http(s)://user:pass@host:port`` (a ClickHouse server). ``run_query`` is what ``stagelog sql``
and the collector's query endpoint execute. Migrations: :mod:`logging_backend.store.ledger`.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from logging_backend.errors import StoreError

log = logging.getLogger(__name__)

DATABASE = "stagelog"

# Output formats of `stagelog sql`: lowercase short names (with a header line), else any
# ClickHouse output format by its exact name (e.g. TSV for no header, Pretty, Parquet).
FORMATS = {
    "csv": "CSVWithNames",
    "tsv": "TSVWithNames",
    "json": "JSON",
    "jsonl": "JSONEachRow",
    "table": "JSONCompact",  # rendered as a table by the CLI
}
_FORMAT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{1,63}$")

# ClickHouse error codes worth retrying: the same insert can succeed later.
TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE: the store's disk is full; space comes back (budget, merges)
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_CODE = re.compile(r"Code: (\d+)\.")
# A full disk is never bad data, whatever code wraps it.
_NO_SPACE = re.compile(r"No space left on device|ENOSPC|NOT_ENOUGH_SPACE|Disk quota exceeded")
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

_chdb_clients: dict[str, Client] = {}


def redact(dsn: str) -> str:
    """Return ``dsn`` with its password replaced by ``***`` (for logs and error messages)."""
    parsed = urlparse(dsn)
    if parsed.password is None:
        return dsn
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urlunparse(parsed._replace(netloc=netloc))


def chdb_path(dsn: str) -> str | None:
    """Return the data directory of a ``chdb://`` DSN, or None for any other DSN.

    ``chdb:///abs/path`` and ``chdb://relative/path`` both name a directory (the second
    relative to the current directory); ``chdb://memory`` or ``chdb://:memory:`` an in-memory
    engine.
    """
    if not dsn.startswith("chdb://"):
        return None
    rest = dsn[len("chdb://") :].split("?", 1)[0]
    if rest in ("", "memory", ":memory:"):
        return ":memory:"
    return str(Path(rest).expanduser().resolve())


def connect(dsn: str) -> Client:
    """Open a clickhouse-connect client for ``dsn``.

    Args:
        dsn: ``chdb://<path>`` or ``http(s)://user:pass@host:port``.

    Returns:
        A client. For chDB, the same client is returned for the same path within a process,
        because chDB allows one engine per process.

    Raises:
        StoreError: the DSN is malformed or the store cannot be reached.
    """
    path = chdb_path(dsn)
    if path is not None:
        client = _chdb_clients.get(path)
        if client is not None:
            return client
        if _chdb_clients:
            other = next(iter(_chdb_clients))
            raise StoreError(
                f"cannot open {dsn}: this process already holds the chDB store at {other} "
                "(chDB allows one data path per process)"
            )
        if path != ":memory:":
            Path(path).mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(interface="chdb", path=path)
        except Exception as exc:  # chdb raises several types; all mean "cannot open"
            raise StoreError(
                f"cannot open chDB store {path}: {exc} (is another process, e.g. the "
                "collector, holding it?)"
            ) from exc
        _chdb_clients[path] = client
        return client
    parsed = urlparse(dsn)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StoreError(
            f"STAGELOG_DSN={redact(dsn)!r} is neither chdb://<path> nor "
            "http(s)://user:pass@host:port"
        )
    try:
        # lz4: insert bodies (Arrow buffers) and results are compressed on the wire.
        return clickhouse_connect.get_client(
            dsn=dsn, connect_timeout=5, send_receive_timeout=60, compress="lz4"
        )
    except ClickHouseError as exc:
        raise StoreError(f"cannot reach ClickHouse at {redact(dsn)}: {exc}") from exc


_http_clients: dict[tuple[str, str], Client] = {}


def connect_http(url: str, user: str, password: str) -> Client:
    """A clickhouse-connect HTTP client for ``url`` (one per URL and user in this process).

    Raises:
        StoreError: the server cannot be reached or refuses the credentials.
    """
    key = (url, user)
    client = _http_clients.get(key)
    if client is not None:
        return client
    parsed = urlparse(url)
    try:
        client = clickhouse_connect.get_client(
            host=parsed.hostname, port=parsed.port, username=user, password=password,
            interface=parsed.scheme or "http", connect_timeout=5, send_receive_timeout=600,
        )
    except ClickHouseError as exc:
        raise StoreError(f"cannot query {url} as {user}: {exc}") from exc
    _http_clients[key] = client
    return client


_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127})?$")
_insert_dir: str | None = None
_insert_dir_lock = threading.Lock()


def _settings_clause(settings: Mapping[str, Any]) -> str:
    """``k = v, ...`` of an INSERT's SETTINGS: names checked, strings quoted."""
    parts = []
    for name, value in settings.items():
        if not _SETTING_NAME.match(name):
            raise StoreError(f"not a ClickHouse setting name: {name!r}")
        if isinstance(value, bool):
            text = str(int(value))
        elif isinstance(value, int):
            text = str(value)
        else:
            text = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts.append(f"{name} = {text}")
    return ", ".join(parts)


def _private_insert_dir() -> str:
    """A folder only this user can enter (0700), removed at exit: the chDB inserts' files."""
    global _insert_dir
    with _insert_dir_lock:
        if _insert_dir is None or not os.path.isdir(_insert_dir):
            _insert_dir = tempfile.mkdtemp(prefix="stagelog-insert-")
            atexit.register(shutil.rmtree, _insert_dir, True)
        return _insert_dir


def insert_arrow(
    client: Any, table: str, data: pa.Table, settings: Mapping[str, Any] | None = None
) -> None:
    """Insert an Arrow table (dictionary columns become LowCardinality without rehashing).

    A chDB client reads the rows from an Arrow stream file written straight from ``data``'s
    buffers (``INSERT ... FROM INFILE ... FORMAT ArrowStream``), in a private folder, removed
    right after: clickhouse-connect's ``insert_arrow`` serialises the table to an Arrow file in
    memory, copies it into bytes and writes those to a temporary file, three copies where one
    does (issue 11: 0.76x of the insert's CPU for the tensors and predictions of a poll,
    bench/results/i11h/). Any other client (a server's, or a wrapper such as the collector's
    counting client, which calls this again with the client it wraps): ``client.insert_arrow``.

    Raises:
        StoreError: ``table`` is not a table name, or a setting name is not one.
        ClickHouseError: The store refused the insert.
        OSError: The file could not be written (a full disk among them).
    """
    if not _TABLE_NAME.match(table):
        raise StoreError(f"not a table name: {table!r}")
    if any(pa.types.is_dictionary(f.type) or pa.types.is_map(f.type) for f in data.schema):
        data = data.unify_dictionaries()  # one dictionary per column (the Arrow file format)
    if not any(c is client for c in _chdb_clients.values()):
        client.insert_arrow(table, data, settings=dict(settings or {}))
        return
    clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
    fd, path = tempfile.mkstemp(suffix=".arrows", dir=_private_insert_dir())
    try:
        with os.fdopen(fd, "wb") as fh, pa.ipc.new_stream(fh, data.schema) as writer:
            writer.write_table(data)
        quoted = "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
        client.command(f"INSERT INTO {table} FROM INFILE {quoted}{clause} FORMAT ArrowStream")
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def close_all() -> None:
    """Close every chDB client this process opened (tests, CLI exit)."""
    while _chdb_clients:
        _, client = _chdb_clients.popitem()
        client.close()
    while _http_clients:
        _, client = _http_clients.popitem()
        client.close()


def is_transient(exc: BaseException) -> bool:
    """Tell whether an error from the store is worth retrying.

    Network, overload and timeouts, and a full disk on either side (ENOSPC, chDB's
    NOT_ENOUGH_SPACE): the same insert succeeds once space is back.
    """
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return True
    text = str(exc)
    if _NO_SPACE.search(text):
        return True
    match = _CODE.search(text)
    return bool(match) and int(match.group(1)) in TRANSIENT_CODES


def clickhouse_format(fmt: str) -> str:
    """Map a ``--format`` value to a ClickHouse output format name.

    Raises:
        StoreError: the name is neither a short name nor a plausible ClickHouse format.
    """
    if fmt in FORMATS:  # lowercase short names; ClickHouse's own names are capitalised
        return FORMATS[fmt]
    if _FORMAT_NAME.match(fmt):
        return fmt
    raise StoreError(
        f"unknown format {fmt!r}: use {', '.join(FORMATS)} or a ClickHouse format name "
        "such as CSVWithNames, Pretty, Parquet"
    )


def run_query(
    client: Client,
    sql: str,
    params: dict[str, Any] | None,
    fmt: str,
    settings: dict[str, Any] | None = None,
) -> bytes:
    """Run one statement with server-side bound parameters and return the formatted result.

    Args:
        client: an open client.
        sql: the statement; parameters appear as ``{name:Type}``.
        params: values by name (strings are parsed by ClickHouse as the declared type).
        fmt: a ClickHouse output format name (see ``clickhouse_format``).
        settings: ClickHouse settings of this query (e.g. ``{"readonly": 1}``).

    Raises:
        StoreError: ClickHouse rejected the statement.
    """
    try:
        return client.raw_query(sql, parameters=params or None, fmt=fmt, settings=settings)
    except ClickHouseError as exc:
        raise StoreError(str(exc)) from exc
