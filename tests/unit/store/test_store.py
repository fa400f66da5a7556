"""Store: DSN parsing, migration ordering and idempotence on a real (tmp) chDB path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from logging_backend import store
from logging_backend.errors import StoreError

REPO = Path(__file__).resolve().parents[3]


def run_py(code: str, tmp_path: Path) -> str:
    """Run ``code`` in a fresh interpreter (chDB allows one data path per process)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_split_statements_ignores_comments_and_quoted_semicolons():
    sql = (
        "-- a; comment\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory; -- tail;\n"
        "\nSELECT 1;"
    )
    assert store.split_statements(sql) == [
        "CREATE TABLE a (x String DEFAULT ';') ENGINE = Memory",
        "SELECT 1",
    ]


def test_migration_files_are_numbered_and_ordered():
    found = store.migrations()
    versions = [m.version for m in found]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert found[0].name.startswith("0001_")


def test_misnamed_or_duplicate_migration_is_refused(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_b.sql").write_text("SELECT 1")
    with pytest.raises(StoreError, match="share version 0001"):
        store.migrations(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("SELECT 1")
    with pytest.raises(StoreError, match="not named"):
        store.migrations(tmp_path)


def test_chdb_path_and_redact():
    assert store.chdb_path("chdb:///tmp/x") == "/tmp/x"
    assert store.chdb_path("chdb://memory") == ":memory:"
    assert store.chdb_path("http://h:8123") is None
    assert store.redact("http://u:secret@h:8123") == "http://u:***@h:8123"
    with pytest.raises(StoreError, match="neither chdb"):
        store.connect("ftp://somewhere")


def test_clickhouse_format_names():
    assert store.clickhouse_format("csv") == "CSVWithNames"
    assert store.clickhouse_format("Parquet") == "Parquet"
    with pytest.raises(StoreError, match="unknown format"):
        store.clickhouse_format("csv; drop")


def test_migrate_applies_in_order_once_and_refuses_edits(tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(store.MIGRATIONS_DIR, migrations)
    data = tmp_path / "db"
    code = f"""
        import json
        from pathlib import Path
        from logging_backend import store
        client = store.connect("chdb://{data}")
        first = store.migrate(client, Path("{migrations}"))
        second = store.migrate(client, Path("{migrations}"))
        tables = [r[0] for r in client.query(
            "SELECT name FROM system.tables WHERE database = 'stagelog' ORDER BY name").result_rows]
        recorded = [r[0] for r in client.query(
            "SELECT name FROM stagelog.schema_migrations ORDER BY version").result_rows]
        print(json.dumps({{"first": first, "second": second, "tables": tables,
                          "recorded": recorded}}))
    """
    out = json.loads(run_py(code, tmp_path))
    names = [m.name for m in store.migrations(migrations)]
    assert out["first"] == names
    assert out["second"] == []
    assert out["recorded"] == names
    for table in ("stage_events", "stage_tensors", "predictions", "model_versions", "actions",
                  "labels", "system_samples", "annotations", "logging_policy", "lineage",
                  "lineage_of", "request_index", "stage_latency_1m", "spool_drops"):
        assert table in out["tables"]

    # A new file is applied on the next run; an edited released file is refused.
    (migrations / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS stagelog.extra (x UInt8) ENGINE = Memory;"
    )
    code = f"""
        from pathlib import Path
        from logging_backend import store
        from logging_backend.errors import StoreError
        client = store.connect("chdb://{data}")
        print(store.migrate(client, Path("{migrations}")))
        p = Path("{migrations}") / "0001_core_tables.sql"
        p.write_text(p.read_text() + "\\n-- edited\\n")
        try:
            store.migrate(client, Path("{migrations}"))
        except StoreError as exc:
            print("refused:", exc)
    """
    out = run_py(code, tmp_path)
    assert "['0099_extra.sql']" in out
    assert "refused: migration 0001_core_tables.sql changed after it was applied" in out
