"""The migration ledger: apply ``migrations/NNNN_*.sql`` in order, once each.

``migrate(client)`` applies the numbered SQL files that are not yet recorded in
``stagelog.schema_migrations`` (rendered for a cluster by :mod:`logging_backend.store.cluster`
when one is configured).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend.errors import ConfigError, StoreError
from logging_backend.store import cluster as cluster_ddl
from logging_backend.store import sqlscan
from logging_backend.store.client import DATABASE

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        """The file's text."""
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        """sha256 of the file, to detect edits after release."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """List the migration files of ``directory`` in version order.

    Raises:
        StoreError: a file is misnamed or two files share a version.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNNN_lowercase_words.sql")
        version = int(match.group(1))
        if version in found:
            raise StoreError(
                f"migrations {found[version].name} and {path.name} share version {version:04d}"
            )
        found[version] = Migration(version, path.name, path)
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split a SQL script into statements on ``;``, ignoring comments and quoted text."""
    return sqlscan.split_statements(sql)


_BOOTSTRAP = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations
    (
        version    UInt32,
        name       String,
        checksum   String,
        applied_at DateTime64(3, 'UTC')
    )
    ENGINE = MergeTree
    ORDER BY version""",
)


def applied_migrations(client: Client, cluster: str | None = None) -> dict[int, tuple[str, str]]:
    """Return ``{version: (name, checksum)}`` of the migrations recorded in the store.

    Args:
        client: an open client.
        cluster: the ClickHouse cluster the bookkeeping table lives on (None: one server).
    """
    for statement in _BOOTSTRAP:
        for rendered in cluster_ddl.render_statement(statement, cluster):
            client.command(rendered)
    rows = client.query(
        f"SELECT version, any(name), any(checksum) FROM {DATABASE}.schema_migrations "
        "GROUP BY version"
    ).result_rows
    return {int(v): (name, checksum) for v, name, checksum in rows}


def migrate(
    client: Client, directory: Path = MIGRATIONS_DIR, cluster: str | None = None
) -> list[str]:
    """Apply pending migrations in version order and record each in ``schema_migrations``.

    Statements are idempotent (``IF NOT EXISTS``), so a migration interrupted half-way is
    simply applied again.

    Args:
        client: an open client.
        directory: where the ``NNNN_*.sql`` files are.
        cluster: a ClickHouse cluster name, else ``STAGELOG_CLUSTER``; when set, every
            statement is rendered for the cluster by ``logging_backend.store.cluster`` (ON CLUSTER,
            Replicated ``_local`` tables + Distributed tables). None and unset: as written.

    Returns:
        The file names applied now (empty when the schema was up to date).

    Raises:
        StoreError: a statement failed, or an applied migration's file was edited afterwards.
        ConfigError: the cluster name is not valid, or a statement cannot be placed on it.
    """
    cluster = cluster_ddl.cluster_name(cluster)
    done = applied_migrations(client, cluster)
    applied: list[str] = []
    for migration in migrations(directory):
        if migration.version in done:
            name, checksum = done[migration.version]
            if checksum != migration.checksum:
                raise StoreError(
                    f"migration {migration.name} changed after it was applied as {name}; "
                    "released migrations must not be edited: add a new numbered file instead"
                )
            continue
        kept = cluster_ddl.kept_drops(migration.sql)
        for statement in split_statements(migration.sql):
            try:
                for rendered in cluster_ddl.render_statement(statement, cluster, kept):
                    client.command(rendered)
            except ClickHouseError as exc:
                raise StoreError(f"migration {migration.name} failed: {exc}") from exc
        client.insert(
            f"{DATABASE}.schema_migrations",
            [[migration.version, migration.name, migration.checksum, datetime.now(timezone.utc)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        log.info("applied migration %s", migration.name)
        applied.append(migration.name)
    return applied


def main(argv: list[str] | None = None) -> int:
    """Print the DDL ``stagelog migrate`` runs for a cluster.

    ``python -m logging_backend.store.ledger [CLUSTER]``.

    Args:
        argv: ``[CLUSTER]``; without it, ``STAGELOG_CLUSTER``.
    """
    import sys  # noqa: PLC0415 - only the command line needs it

    args = sys.argv[1:] if argv is None else argv
    try:
        name = cluster_ddl.cluster_name(args[0] if args else None)
        if name is None:
            raise ConfigError(f"give a cluster name: python -m logging_backend.store.ledger NAME "
                              f"(or set {cluster_ddl.CLUSTER})")
        for migration in migrations():
            print(f"-- {migration.name}")
            for statement in cluster_ddl.render_migration(migration.sql, name):
                print(f"{statement};\n")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
