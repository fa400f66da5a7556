"""The store room: talks to ClickHouse (embedded chDB or a server); imports config, errors only.

The names below are the room's public API (``from logging_backend import store``).
"""

from logging_backend.store.client import (
    DATABASE,
    FORMATS,
    TRANSIENT_CODES,
    chdb_path,
    clickhouse_format,
    close_all,
    connect,
    connect_http,
    insert_arrow,
    is_transient,
    redact,
    run_query,
)
from logging_backend.store.ledger import (
    _BOOTSTRAP,
    MIGRATIONS_DIR,
    Migration,
    applied_migrations,
    migrate,
    migrations,
    split_statements,
)
from logging_backend.store.repair import missing_objects, repair, schema_objects

__all__ = [
    "insert_arrow",
    "DATABASE",
    "FORMATS",
    "MIGRATIONS_DIR",
    "TRANSIENT_CODES",
    "Migration",
    "_BOOTSTRAP",
    "applied_migrations",
    "chdb_path",
    "clickhouse_format",
    "close_all",
    "connect",
    "connect_http",
    "is_transient",
    "migrate",
    "migrations",
    "missing_objects",
    "redact",
    "repair",
    "run_query",
    "schema_objects",
    "split_statements",
]
