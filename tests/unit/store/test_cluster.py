"""Cluster rendering of the migrations (logging_backend.store.cluster), checked as far as
chDB allows.

What runs here: golden checks on every rendered statement of every migration file; the real
ClickHouse parser (``formatQuery`` in the embedded engine) accepts every rendered statement;
and the cluster-shaped schema (``_local`` tables, materialized views on them, views and
dashboards on the user-facing names) is executed on one node with a stand-in for the parts
the embedded engine cannot run.

What cannot run here: ``ON CLUSTER`` (needs a cluster definition and ClickHouse Keeper),
``Replicated*MergeTree`` (needs Keeper and the ``{shard}``/``{replica}`` macros) and
``Distributed`` (needs ``remote_servers``). The stand-in removes ``ON CLUSTER``, uses the
non-replicated engine with the same arguments, and reads the user-facing name through a
``Merge`` table over the ``_local`` one; docs/deploy.md describes the real cluster set-up.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from logging_backend import store
from logging_backend.errors import ConfigError
from logging_backend.store import cluster, ledger, sqlscan

C = "stagelog_cluster"
ON = f"ON CLUSTER `{C}`"
MIGRATIONS = store.migrations()


def norm(sql: str) -> str:
    text = " ".join(sqlscan.strip_comments(sql).split())
    return re.sub(r"MergeTree\(\)", "MergeTree", text)  # the same engine either way


def test_single_server_runs_the_migrations_as_written():
    for migration in MIGRATIONS:
        for statement in sqlscan.split_statements(migration.sql):
            assert cluster.render_statement(statement, None) == [statement]


def test_cluster_name_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(cluster.CLUSTER, raising=False)
    assert cluster.cluster_name() is None
    monkeypatch.setenv(cluster.CLUSTER, "  ")
    assert cluster.cluster_name() is None
    monkeypatch.setenv(cluster.CLUSTER, "prod-eu")
    assert cluster.cluster_name() == "prod-eu"
    assert cluster.cluster_name("other") == "other"
    monkeypatch.setenv(cluster.CLUSTER, "prod; DROP TABLE x")
    with pytest.raises(ConfigError, match="STAGELOG_CLUSTER='prod; DROP TABLE x'"):
        cluster.cluster_name()


def test_splitter_agrees_with_the_store():
    for migration in MIGRATIONS:
        mine = [norm(s) for s in sqlscan.split_statements(migration.sql)]
        theirs = [norm(s) for s in store.split_statements(migration.sql)]
        assert mine == theirs, migration.name


def _revert(rendered: str, names: set[str]) -> str:
    """Undo the cluster rewrite of a local-table/MV statement, for the golden comparison."""
    text = rendered.replace(f" {ON}", "")
    text = re.sub(r"Replicated(\w*)MergeTree\('/clickhouse/tables/\{shard\}/\w+/\w+', "
                  r"'\{replica\}'\)", r"\1MergeTree", text)
    text = re.sub(r"Replicated(\w+)MergeTree\('/clickhouse/tables/\{shard\}/\w+/\w+', "
                  r"'\{replica\}'(?:, )?", r"\1MergeTree(", text)
    text = text.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    text = text.replace("non_non_replicated", "non_replicated")
    for name in names:
        text = text.replace(f"{name}{cluster.LOCAL_SUFFIX}", name)
    return text


def _tables_of(statements: list[str]) -> set[str]:
    tables = set()
    for statement in statements:
        match = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+\.\w+)", statement)
        if match:
            tables.add(match.group(1))
    return tables


ALL_SOURCE = [s for m in MIGRATIONS for s in sqlscan.split_statements(m.sql)]
TABLES = _tables_of([norm(s) for s in ALL_SOURCE])


@pytest.mark.parametrize("migration", MIGRATIONS, ids=[m.name for m in MIGRATIONS])
def test_every_statement_renders_for_the_cluster(migration):
    for source in sqlscan.split_statements(migration.sql):
        src = norm(source)
        rendered = [norm(r) for r in cluster.render_statement(source, C)]
        if src.startswith("INSERT INTO"):
            assert rendered == [src]  # through the Distributed table, like every other write
            continue
        for statement in rendered:
            assert statement.count(ON) == 1, statement
        head = src.split(" (")[0].split(" AS ")[0]
        if src.startswith("DROP VIEW"):
            assert rendered == [f"{src} {ON}"]
        elif src.startswith("CREATE DATABASE"):
            assert rendered == [f"{src} {ON}"]
        elif src.startswith("CREATE TABLE"):
            name = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\.(\w+)", src)
            db, table = name.group(1), name.group(2)
            assert len(rendered) == 2, src
            local, distributed = rendered
            assert local.startswith(
                f"CREATE TABLE IF NOT EXISTS {db}.{table}_local {ON} (")
            family = re.search(r"ENGINE = (\w*)MergeTree", src).group(1)
            assert (f"ENGINE = Replicated{family}MergeTree("
                    f"'/clickhouse/tables/{{shard}}/{db}/{table}_local', '{{replica}}'") in local
            assert "non_replicated_deduplication_window" not in local
            window = re.search(r"non_replicated_deduplication_window = (\d+)", src)
            if window:
                assert f"replicated_deduplication_window = {window.group(1)}" in local
            assert norm(_revert(local, {f"{db}.{table}"})) == src  # nothing else changed
            key = "cityHash64(request_id)" if re.search(r"[(,] request_id ", src) else "rand()"
            assert distributed == (
                f"CREATE TABLE IF NOT EXISTS {db}.{table} {ON} AS {db}.{table}_local "
                f"ENGINE = Distributed(`{C}`, {db}, {table}_local, {key})")
        elif src.startswith("CREATE MATERIALIZED VIEW"):
            assert len(rendered) == 1
            mv = rendered[0]
            target = re.search(r" TO (\w+\.\w+)", src).group(1)
            assert f" TO {target}_local AS " in mv
            select = mv.split(" AS ", 1)[1]
            for ref in re.findall(r"\b(\w+\.\w+)\b", select):
                if ref.split(".")[0] == "stagelog":
                    assert ref.endswith("_local"), (ref, mv)  # each shard aggregates its rows
            assert norm(_revert(mv, TABLES)) == src
        elif re.match(r"CREATE (OR REPLACE )?(VIEW|FUNCTION|DICTIONARY)", src):
            assert rendered == [src.replace(head, f"{head} {ON}", 1)]
        elif src.startswith("ALTER TABLE"):
            assert 1 <= len(rendered) <= 2
            assert "_local " in rendered[0]
        else:
            pytest.fail(f"a migration statement of a kind these checks do not know: {src[:80]}")


def test_render_golden_examples():
    replacing = """CREATE TABLE IF NOT EXISTS stagelog.notes
(
    id String, request_id String, ver UInt64
)
ENGINE = ReplacingMergeTree(ver)
ORDER BY id
SETTINGS non_replicated_deduplication_window = 100"""
    local, distributed = cluster.render_statement(replacing, "c1")
    assert local == """CREATE TABLE IF NOT EXISTS stagelog.notes_local ON CLUSTER `c1`
(
    id String, request_id String, ver UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/stagelog/notes_local', \
'{replica}', ver)
ORDER BY id
SETTINGS replicated_deduplication_window = 100"""
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS stagelog.notes ON CLUSTER `c1` AS stagelog.notes_local\n"
        "ENGINE = Distributed(`c1`, stagelog, notes_local, cityHash64(request_id))")

    assert cluster.render_statement(
        "CREATE TABLE `stagelog`.`kv` (k String) ENGINE = MergeTree() ORDER BY k", "c1") == [
        "CREATE TABLE stagelog.kv_local ON CLUSTER `c1` (k String) ENGINE = "
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/stagelog/kv_local', '{replica}') "
        "ORDER BY k",
        "CREATE TABLE stagelog.kv ON CLUSTER `c1` AS stagelog.kv_local\n"
        "ENGINE = Distributed(`c1`, stagelog, kv_local, rand())",
    ]
    assert cluster.render_statement(
        "ALTER TABLE stagelog.stage_events ADD COLUMN IF NOT EXISTS gpu_device_id "
        "Nullable(UInt16)", "c1") == [
        "ALTER TABLE stagelog.stage_events_local ON CLUSTER `c1` ADD COLUMN IF NOT EXISTS "
        "gpu_device_id Nullable(UInt16)",
        "ALTER TABLE stagelog.stage_events ON CLUSTER `c1` ADD COLUMN IF NOT EXISTS "
        "gpu_device_id Nullable(UInt16)",
    ]
    assert cluster.render_statement(
        "ALTER TABLE stagelog.stage_tensors MODIFY TTL toDateTime(ts) + INTERVAL 7 DAY", "c1") == [
        "ALTER TABLE stagelog.stage_tensors_local ON CLUSTER `c1` MODIFY TTL toDateTime(ts) + "
        "INTERVAL 7 DAY"]
    assert cluster.render_statement(
        "CREATE FUNCTION IF NOT EXISTS stagelog_psi AS (p, q) -> (p - q) * log(p / q)", "c1") == [
        "CREATE FUNCTION IF NOT EXISTS stagelog_psi ON CLUSTER `c1` AS (p, q) -> "
        "(p - q) * log(p / q)"]
    assert cluster.render_statement(
        "CREATE DICTIONARY IF NOT EXISTS stagelog.merchants (id String, risk Float32) "
        "PRIMARY KEY id SOURCE(CLICKHOUSE(TABLE 'merchant_risk')) LIFETIME(300) "
        "LAYOUT(COMPLEX_KEY_HASHED())", "c1")[0].startswith(
        "CREATE DICTIONARY IF NOT EXISTS stagelog.merchants ON CLUSTER `c1` (id String")
    assert cluster.render_statement("DROP TABLE IF EXISTS stagelog.old", "c1") == [
        "DROP TABLE IF EXISTS stagelog.old ON CLUSTER `c1`",
        "DROP TABLE IF EXISTS stagelog.old_local ON CLUSTER `c1`",
    ]
    assert cluster.render_statement(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.mv TO stagelog.agg AS "
        "SELECT k, count() AS n FROM stagelog.src -- a comment; with a semicolon\nGROUP BY k",
        "c1") == [
        "CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.mv ON CLUSTER `c1` TO stagelog.agg_local"
        " AS SELECT k, count() AS n FROM stagelog.src_local\nGROUP BY k"]


@pytest.mark.parametrize(("statement", "message"), [
    ("CREATE TABLE stagelog.t (x UInt8) ENGINE = Memory", "engine Memory has no replicated"),
    ("CREATE TABLE stagelog.t ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x", "AS SELECT"),
    ("ALTER TABLE stagelog.t ADD COLUMN y UInt8, MODIFY TTL ts + INTERVAL 1 DAY", "split it"),
    ("CREATE MATERIALIZED VIEW stagelog.mv ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x",
     "cannot place this migration statement"),
    ("OPTIMIZE TABLE stagelog.t FINAL", "cannot place this migration statement"),
])
def test_statements_it_cannot_place_fail_loudly(statement, message):
    with pytest.raises(ConfigError, match=message):
        cluster.render_statement(statement, "c1")


def test_command_prints_the_cluster_ddl(capsys, monkeypatch):
    monkeypatch.delenv(cluster.CLUSTER, raising=False)
    assert ledger.main([]) == 2
    assert "give a cluster name" in capsys.readouterr().err
    assert ledger.main(["prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"-- {MIGRATIONS[0].name}\n")
    on_cluster = [s for s in rendered_migrations() if not s.lstrip().startswith("INSERT")]
    assert out.count("ON CLUSTER `prod`") == len(on_cluster)


def test_comments_and_quotes():
    sql = "SELECT '--not a comment; really' AS a -- a comment\n/* block; */ ; SELECT 2"
    assert sqlscan.split_statements(sql) == [
        "SELECT '--not a comment; really' AS a", "SELECT 2"]


def rendered_migrations() -> list[str]:
    return [s for m in MIGRATIONS for s in cluster.render_migration(m.sql, C)]


def single_node_standin(statement: str) -> str:
    """What one node can run without Keeper or remote_servers (see the module docstring)."""
    text = statement.replace(f" {ON}", "")
    text = re.sub(r"Replicated(\w*)MergeTree\('/clickhouse/tables/\{shard\}/\w+/\w+', "
                  r"'\{replica\}'(?:, )?", r"\1MergeTree(", text)
    text = text.replace("replicated_deduplication_window", "non_replicated_deduplication_window")
    text = text.replace("non_non_replicated", "non_replicated")
    return re.sub(r"ENGINE = Distributed\(`[^`]+`, (\w+), (\w+), .*\)\s*$",
                  r"ENGINE = Merge(\1, '^\2$')", text, flags=re.S)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path_factory.mktemp('cluster') / 'ch'}")
    yield c
    store.close_all()


def test_every_rendered_statement_parses_in_the_engine(client):
    statements = rendered_migrations()
    assert len(statements) > len(ALL_SOURCE)
    for statement in statements:
        formatted = client.query("SELECT formatQuery({q:String})",
                                 parameters={"q": statement}).result_rows[0][0]
        if formatted.startswith("INSERT INTO"):
            continue  # a write goes through the Distributed table, not ON CLUSTER
        assert f"ON CLUSTER {C}" in formatted, formatted[:200]


def test_cluster_layout_works_on_one_node_standin(client):
    for statement in rendered_migrations():
        if statement.lstrip().startswith("INSERT"):
            continue  # the stand-in's Merge tables take no writes; a Distributed table does
        client.command(single_node_standin(statement))
    tables = {r[0]: r[1] for r in client.query(
        "SELECT name, engine FROM system.tables WHERE database = 'stagelog'").result_rows}
    for name in TABLES:
        table = name.split(".")[1]
        assert tables[table] == "Merge" and tables[f"{table}_local"].endswith("MergeTree"), table
    client.command(
        "INSERT INTO stagelog.stage_events_local (ts, request_id, stage, model_name, status, "
        "wall_ms, cpu_ms) VALUES (now64(6), 'r1', 'preprocess', 'preprocess', 'ok', 1.5, 1.0), "
        "(now64(6), 'r1', 'features', 'features', 'ok', 2.5, 2.0)")
    # Materialized views fed the _local targets; user-facing names read them.
    assert client.query("SELECT count() FROM stagelog.stage_events").result_rows == [(2,)]
    assert client.query(
        "SELECT sum(requests) FROM stagelog.stage_latency_1m").result_rows == [(2,)]
    assert client.query(
        "SELECT request_id FROM stagelog.request_index").result_rows == [("r1",)]
    lineage = client.query(
        "SELECT stage FROM stagelog.lineage WHERE request_id = 'r1' AND kind = 'event' "
        "ORDER BY step").result_rows
    assert lineage == [("preprocess",), ("features",)]


def test_example_cluster_config_names_real_settings_and_macros(client):
    root = Path(__file__).resolve().parents[3] / "docker"
    config = ET.parse(root / "clickhouse-cluster" / "config.d" / "stagelog-cluster.xml").getroot()
    assert config.find("remote_servers/stagelog/shard/replica/host") is not None
    assert {m.tag for m in config.find("macros")} == {"shard", "replica"}  # cluster.REPLICA_PATH
    assert "{shard}" in cluster.REPLICA_PATH
    known = {r[0] for r in client.query("SELECT name FROM system.settings").result_rows}
    for users in (root / "clickhouse-cluster" / "users.d" / "stagelog-cluster.xml",
                  root / "clickhouse" / "users.d" / "grafana.xml"):
        for profile in ET.parse(users).getroot().find("profiles"):
            for setting in profile:
                if setting.tag != "constraints":
                    assert setting.tag in known, (users.name, profile.tag, setting.tag)


class RecordingClient:
    """Stands in for a clickhouse-connect client of a cluster the embedded engine cannot be."""

    def __init__(self):
        self.commands: list[str] = []
        self.inserts: list[str] = []

    def command(self, sql):
        self.commands.append(sql)

    def query(self, sql):
        class Result:
            result_rows: list = []
        return Result()

    def insert(self, table, rows, column_names):
        self.inserts.append(table)


def test_store_migrate_renders_for_the_configured_cluster(monkeypatch):
    monkeypatch.setenv(cluster.CLUSTER, C)
    client = RecordingClient()
    applied = store.migrate(client)
    assert applied == [m.name for m in MIGRATIONS]
    expected = [s for st in store._BOOTSTRAP for s in cluster.render_statement(st, C)]
    expected += rendered_migrations()
    assert client.commands == expected
    assert "CREATE TABLE IF NOT EXISTS stagelog.schema_migrations_local ON CLUSTER" in (
        client.commands[1])
    assert client.inserts == ["stagelog.schema_migrations"] * len(MIGRATIONS)  # Distributed

    monkeypatch.delenv(cluster.CLUSTER)
    single = RecordingClient()
    store.migrate(single)
    assert all("ON CLUSTER" not in c for c in single.commands)
    assert single.commands[len(store._BOOTSTRAP):] == [
        s for m in MIGRATIONS for s in store.split_statements(m.sql)]


def test_views_the_batch_job_replaces_on_one_server_stay_on_a_cluster():
    """0092 drops request_index_mv and stage_latency_1m_mv for the rollup job, which does not
    run on a cluster: there the DROPs are left out; 0085's DROP-then-CREATE still runs."""
    by_name = {m.name: m for m in MIGRATIONS}
    assert cluster.kept_drops(by_name["0092_event_rollups_by_block.sql"].sql) == {
        "stagelog.request_index_mv", "stagelog.stage_latency_1m_mv"}
    assert cluster.kept_drops(by_name["0085_probes_not_production.sql"].sql) == frozenset()
    rendered = cluster.render_migration(by_name["0092_event_rollups_by_block.sql"].sql, C)
    assert not [s for s in rendered if s.lstrip().upper().startswith("DROP")]
    again = cluster.render_migration(by_name["0085_probes_not_production.sql"].sql, C)
    assert any("DROP VIEW IF EXISTS stagelog.stage_latency_1m_mv" in s for s in again)
    one_server = cluster.render_migration(by_name["0092_event_rollups_by_block.sql"].sql, None)
    assert sum(s.startswith("DROP VIEW") for s in one_server) == 2
