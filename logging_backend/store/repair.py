"""Repair: every table and view the migrations create exists, or is created again.

The ledger (``schema_migrations``) says which files ran, not that their objects still exist: a
``DROP TABLE`` leaves the ledger as it was, and shipping into the dropped table then fails.
``repair(client)`` compares the objects the migrations create with ``system.tables`` and, when
one is missing, runs every idempotent statement of every migration again in version order
(``DROP VIEW IF EXISTS`` included: a view a later migration replaced or removed ends as that
migration left it, never as an older one defined it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend.errors import StoreError
from logging_backend.store import cluster as cluster_ddl
from logging_backend.store import sqlscan
from logging_backend.store.client import DATABASE
from logging_backend.store.ledger import MIGRATIONS_DIR, migrations

log = logging.getLogger(__name__)

_OBJECT = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?`?(?P<db>\w+)`?\.`?(?P<name>\w+)`?",
    re.I,
)
_IDEMPOTENT = re.compile(r"\bIF\s+NOT\s+EXISTS\b|^\s*CREATE\s+OR\s+REPLACE\b", re.I)
# A view a later migration drops (and may create anew): replayed in order, so that a repair
# ends with the latest definition, or none (0090 dropped the rollup views for a batch job).
# Views only: a view holds no rows; a DROP TABLE is never replayed.
_DROP_VIEW = re.compile(
    r"^\s*DROP\s+VIEW\s+IF\s+EXISTS\s+`?(?P<db>\w+)`?\.`?(?P<name>\w+)`?", re.I
)


def schema_objects(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    """``(database, name)`` of every table and view the migrations create and leave, in order."""
    found: list[tuple[str, str]] = []
    for migration in migrations(directory):
        for statement in sqlscan.split_statements(migration.sql):
            text = sqlscan.strip_comments(statement)
            if drop := _DROP_VIEW.match(text):
                key = (drop.group("db"), drop.group("name"))
                if key in found:
                    found.remove(key)
                continue
            match = _OBJECT.match(text)
            if match and (match.group("db"), match.group("name")) not in found:
                found.append((match.group("db"), match.group("name")))
    return found


def missing_objects(client: Client, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """``db.name`` of each schema object that the store lacks (e.g. after a DROP TABLE)."""
    objects = schema_objects(directory)
    rows = client.query(
        "SELECT database, name FROM system.tables WHERE database IN {dbs:Array(String)}",
        parameters={"dbs": sorted({db for db, _ in objects} or {DATABASE})},
    ).result_rows
    present = {(db, name) for db, name in rows}
    return [f"{db}.{name}" for db, name in objects if (db, name) not in present]


def repair(
    client: Client, directory: Path = MIGRATIONS_DIR, cluster: str | None = None
) -> list[str]:
    """Recreate every schema object the store lacks; return their ``db.name``.

    The statements of every migration run again in version order, each only if it is
    idempotent (``IF NOT EXISTS``, ``OR REPLACE``): objects that exist stay as they are, and a
    missing table comes back with the columns later migrations added to it. Its rows are gone.

    Raises:
        StoreError: a statement failed.
    """
    cluster = cluster_ddl.cluster_name(cluster)
    missing = missing_objects(client, directory)
    if not missing:
        return []
    log.warning("schema objects missing from the store, recreating: %s", ", ".join(missing))
    for migration in migrations(directory):
        kept = cluster_ddl.kept_drops(migration.sql)
        for statement in sqlscan.split_statements(migration.sql):
            text = sqlscan.strip_comments(statement)
            if not (_IDEMPOTENT.search(text) or _DROP_VIEW.match(text)):
                continue
            try:
                for rendered in cluster_ddl.render_statement(statement, cluster, kept):
                    client.command(rendered)
            except ClickHouseError as exc:
                raise StoreError(f"repairing from {migration.name} failed: {exc}") from exc
    still = set(missing_objects(client, directory))
    return [name for name in missing if name not in still]
