"""Render the schema migrations for a ClickHouse cluster (set ``STAGELOG_CLUSTER``).

On one server the migrations run as written. On a cluster every statement runs ``ON CLUSTER``
and each table becomes two:

- ``<db>.<name>_local``: the data, on every node, with the replicated variant of its engine
  (``ReplicatedMergeTree('/clickhouse/tables/{shard}/<db>/<name>_local', '{replica}')``; the
  ``{shard}`` and ``{replica}`` macros come from each server's ``<macros>`` config);
- ``<db>.<name>``: a ``Distributed`` table with the same columns under the name users, the
  collector and the dashboards already use. Tables with a ``request_id`` column are sharded by
  ``cityHash64(request_id)``, so all rows of one request live on one shard; others by ``rand()``.

Materialized views are rewritten to read from and write to the ``_local`` tables (each shard
aggregates what it stores; ``-Merge`` combinators through the Distributed table finish the job).
Plain views, SQL functions and dictionaries are created on every node; views keep reading the
user-facing (Distributed) names. ``ALTER TABLE`` of columns runs on both tables, other ALTERs on
the ``_local`` table only. Deduplication of retried inserts moves from
``non_replicated_deduplication_window`` to ``replicated_deduplication_window``, same size.

A statement this module does not know how to place on a cluster raises ``ConfigError`` rather
than being run half-right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from logging_backend import config
from logging_backend.errors import ConfigError
from logging_backend.store.sqlscan import split_statements, strip_comments

CLUSTER = config.CLUSTER
LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{{shard}}/{db}/{table}"

_NAME = r"`?(?P<{0}>[A-Za-z_][A-Za-z0-9_]*)`?"
_QUALIFIED = _NAME.format("db") + r"\." + _NAME.format("table")
_CREATE_DATABASE = re.compile(
    r"^\s*CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME.format("db"), re.I
)
_CREATE_TABLE = re.compile(
    r"^\s*CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?" + _QUALIFIED, re.I
)
_CREATE_MV = re.compile(
    r"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?" + _QUALIFIED
    + r"\s+TO\s+" + _NAME.format("tdb") + r"\." + _NAME.format("target"),
    re.I,
)
_CREATE_VIEW = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QUALIFIED, re.I
)
_ALTER_TABLE = re.compile(r"^\s*ALTER\s+TABLE\s+" + _QUALIFIED, re.I)
_CREATE_FUNCTION = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    + _NAME.format("function"),
    re.I,
)
_CREATE_DICTIONARY = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?DICTIONARY\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _QUALIFIED,
    re.I,
)
_DROP = re.compile(
    r"^\s*DROP\s+(?P<kind>TABLE|VIEW|DICTIONARY)\s+(?:IF\s+EXISTS\s+)?" + _QUALIFIED, re.I
)
# Views that one server replaces with the batch rollup job (logging_backend.store.rollups,
# migration 0092), which does not run on a cluster (block numbers are per shard): there they
# stay. A migration that drops one of them for good (no CREATE of it after the DROP in the same
# file) has that DROP left out on a cluster; a DROP followed by a new definition still runs.
KEPT_ON_CLUSTER = frozenset({"stagelog.request_index_mv", "stagelog.stage_latency_1m_mv"})
_ENGINE = re.compile(
    r"\bENGINE\s*=\s*(?P<family>Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing|)"
    r"MergeTree\b(?:\s*\((?P<args>[^()]*)\))?",
    re.I,
)
_ANY_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>[A-Za-z]+)", re.I)
_DEDUP = re.compile(r"\bnon_replicated_deduplication_window\b", re.I)
_REQUEST_ID_COLUMN = re.compile(r"[(,]\s*`?request_id`?\s+[A-Za-z]", re.I)


def cluster_name(explicit: str | None = None) -> str | None:
    """Return the configured cluster name, or None for a single server.

    Args:
        explicit: A name that wins over ``STAGELOG_CLUSTER``.

    Raises:
        ConfigError: the name is not a plain identifier (it is spliced into DDL).
    """
    name = config.load(cluster=explicit).cluster
    if not name:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
        raise ConfigError(
            f"{CLUSTER}={name!r} must be a cluster name from the server's remote_servers "
            "(letters, digits, '_' or '-')"
        )
    return name


@dataclass(frozen=True)
class _Names:
    db: str
    table: str

    @property
    def local(self) -> str:
        return f"{self.db}.{self.table}{LOCAL_SUFFIX}"

    @property
    def public(self) -> str:
        return f"{self.db}.{self.table}"


def _on_cluster(cluster: str) -> str:
    return f"ON CLUSTER `{cluster}`"


def _insert_after(match: re.Match[str], statement: str, text: str) -> str:
    return statement[: match.end()] + " " + text + statement[match.end() :]


def _replicated_engine(statement: str, names: _Names) -> str:
    engines = list(_ENGINE.finditer(statement))
    if len(engines) != 1:
        found = _ANY_ENGINE.search(statement)
        engine = found.group("engine") if found else "none"
        raise ConfigError(
            f"cannot place {names.public} on a cluster: engine {engine} has no replicated variant "
            "here (expected one *MergeTree engine)"
        )
    engine = engines[0]
    path = REPLICA_PATH.format(db=names.db, table=names.table + LOCAL_SUFFIX)
    args = [f"'{path}'", "'{replica}'"]
    if engine.group("args") and engine.group("args").strip():
        args.append(engine.group("args").strip())
    replacement = f"ENGINE = Replicated{engine.group('family')}MergeTree({', '.join(args)})"
    replaced = statement[: engine.start()] + replacement + statement[engine.end() :]
    return _DEDUP.sub("replicated_deduplication_window", replaced)


def _sharding_key(statement: str) -> str:
    """Co-locate the rows of one request when the table has a request_id column."""
    engine = _ANY_ENGINE.search(statement)
    columns = statement[: engine.start()] if engine else statement
    return "cityHash64(request_id)" if _REQUEST_ID_COLUMN.search(columns) else "rand()"


def _rename_table(match: re.Match[str], statement: str, new_name: str) -> str:
    start, end = match.start("db"), match.end("table")
    # Keep a closing backtick of a quoted table name out of the replaced span.
    if statement[end : end + 1] == "`":
        end += 1
    if start > 0 and statement[start - 1] == "`":
        start -= 1
    return statement[:start] + new_name + statement[end:]


def _render_table(match: re.Match[str], statement: str, cluster: str) -> list[str]:
    names = _Names(match.group("db"), match.group("table"))
    local = _rename_table(match, statement, names.local)
    local_match = _CREATE_TABLE.match(local)
    assert local_match is not None  # same header, new name
    local = _insert_after(local_match, local, _on_cluster(cluster))
    local = _replicated_engine(local, names)
    if_not_exists = "IF NOT EXISTS " if match.group("ine") else ""
    distributed = (
        f"CREATE TABLE {if_not_exists}{names.public} {_on_cluster(cluster)} AS {names.local}\n"
        f"ENGINE = Distributed(`{cluster}`, {names.db}, {names.table}{LOCAL_SUFFIX}, "
        f"{_sharding_key(statement)})"
    )
    return [local, distributed]


def _local_references(sql: str, tables: set[str]) -> str:
    """Point ``db.table`` references at ``db.table_local`` for the given public names."""

    def swap(found: re.Match[str]) -> str:
        name = f"{found.group('db')}.{found.group('table')}"
        return f"{name}{LOCAL_SUFFIX}" if name in tables else found.group(0)

    return re.sub(_QUALIFIED, swap, sql)


def _render_materialized_view(match: re.Match[str], statement: str, cluster: str) -> list[str]:
    head = statement[: match.start("tdb")].rstrip()
    head = re.sub(r"\s+TO$", "", head, flags=re.I)
    target = f"{match.group('tdb')}.{match.group('target')}"
    rest = statement[match.end() :]
    if not re.match(r"^`?(\s*\([^)]*\))?\s+AS\s", rest, re.I):
        raise ConfigError(f"cannot place {head!r} on a cluster: no AS SELECT after TO {target}")
    rest = rest[1:] if rest.startswith("`") else rest
    sources = {f"{m.group('db')}.{m.group('table')}" for m in re.finditer(_QUALIFIED, rest)}
    rendered = (
        f"{head} {_on_cluster(cluster)} TO {target}{LOCAL_SUFFIX}"
        f"{_local_references(rest, sources)}"
    )
    return [rendered]


_COLUMN_OPS = re.compile(r"\b(ADD|DROP|MODIFY|RENAME|CLEAR|COMMENT)\s+COLUMN\b", re.I)
_STORAGE_OPS = re.compile(
    r"\b(MODIFY\s+(TTL|SETTING|ORDER\s+BY|QUERY|COMMENT)|RESET\s+SETTING|REMOVE\s+TTL"
    r"|(ADD|DROP|CLEAR|MATERIALIZE)\s+(INDEX|PROJECTION|CONSTRAINT|STATISTICS)"
    r"|(DROP|DETACH|ATTACH|FREEZE|MOVE|REPLACE)\s+PARTITION|MATERIALIZE\s+(TTL|COLUMN)"
    r"|UPDATE|DELETE)\b",
    re.I,
)


def _render_alter(match: re.Match[str], statement: str, cluster: str) -> list[str]:
    names = _Names(match.group("db"), match.group("table"))
    commands = statement[match.end() :]
    column_ops, storage_ops = _COLUMN_OPS.search(commands), _STORAGE_OPS.search(commands)
    if column_ops and storage_ops:
        raise ConfigError(
            f"cannot place this ALTER of {names.public} on a cluster: it mixes column changes "
            "(both tables) with storage changes (the _local table only); split it in two"
        )
    local = _rename_table(match, statement, names.local)
    local_match = _ALTER_TABLE.match(local)
    assert local_match is not None  # same header, new name
    rendered = [_insert_after(local_match, local, _on_cluster(cluster))]
    if column_ops:  # the Distributed table must show the same columns
        rendered.append(_insert_after(match, statement, _on_cluster(cluster)))
    return rendered


def kept_drops(sql: str) -> frozenset[str]:
    """The ``KEPT_ON_CLUSTER`` views a migration file drops and does not create again."""
    dropped: set[str] = set()
    for statement in split_statements(sql):
        text = strip_comments(statement).strip()
        if (match := _DROP.match(text)) and match.group("kind").upper() == "VIEW":
            name = f"{match.group('db')}.{match.group('table')}"
            if name in KEPT_ON_CLUSTER:
                dropped.add(name)
        elif match := _CREATE_MV.match(text):
            dropped.discard(f"{match.group('db')}.{match.group('table')}")
    return frozenset(dropped)


def render_statement(
    statement: str, cluster: str | None, kept: frozenset[str] = frozenset()
) -> list[str]:
    """Return what to run for one migration statement on ``cluster``.

    Args:
        statement: One DDL statement, as split from a migration file.
        cluster: The cluster name; None returns ``[statement]`` unchanged.
        kept: Views whose DROP is left out on a cluster (:func:`kept_drops` of the file).

    Returns:
        One or more statements, in the order they must run.

    Raises:
        ConfigError: the statement cannot be placed on a cluster by these rules.
    """
    if cluster is None:
        return [statement]
    statement = "\n".join(line.rstrip() for line in strip_comments(statement).strip().splitlines())
    on = _on_cluster(cluster)
    if match := _CREATE_DATABASE.match(statement):
        return [_insert_after(match, statement, on)]
    if match := _CREATE_MV.match(statement):
        return _render_materialized_view(match, statement, cluster)
    if match := _CREATE_VIEW.match(statement) or _CREATE_FUNCTION.match(statement):
        return [_insert_after(match, statement, on)]
    if match := _CREATE_DICTIONARY.match(statement):
        return [_insert_after(match, statement, on)]
    if match := _CREATE_TABLE.match(statement):
        if re.search(r"\bAS\s+SELECT\b", statement, re.I):
            raise ConfigError(f"cannot place CREATE TABLE ... AS SELECT on a cluster: {statement}")
        return _render_table(match, statement, cluster)
    if match := _ALTER_TABLE.match(statement):
        return _render_alter(match, statement, cluster)
    if match := _DROP.match(statement):
        if f"{match.group('db')}.{match.group('table')}" in kept:
            return []
        public = _insert_after(match, statement, on)
        if match.group("kind").upper() != "TABLE":
            return [public]
        names = _Names(match.group("db"), match.group("table"))
        local = _rename_table(match, statement, names.local)
        local_match = _DROP.match(local)
        assert local_match is not None  # same header, new name
        return [public, _insert_after(local_match, local, on)]
    if re.match(r"^\s*INSERT\s+INTO\b", statement, re.I):
        return [statement]  # through the Distributed table, like every other write
    raise ConfigError(
        f"cannot place this migration statement on a cluster: {statement[:120]!r}; "
        "supported: CREATE DATABASE/TABLE/VIEW/MATERIALIZED VIEW ... TO/FUNCTION/DICTIONARY, "
        "ALTER TABLE, DROP, INSERT"
    )


def render_migration(sql: str, cluster: str | None) -> list[str]:
    """Split a migration file and render every statement for ``cluster`` (None: as written)."""
    rendered: list[str] = []
    kept = kept_drops(sql)
    for statement in split_statements(sql):
        rendered.extend(render_statement(statement, cluster, kept))
    return rendered
