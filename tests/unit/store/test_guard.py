"""The reader's SQL guard: one read statement, nothing that leaves the store.

``ast_samples.json`` holds what chDB 26.9's ``EXPLAIN AST`` printed for each sample
(``{name: [statement, ast]}``); ``test_samples_match_the_engine`` checks them against the
installed engine in a child process (chDB holds one data path per process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logging_backend.store import guard

SAMPLES = json.loads((Path(__file__).parent / "ast_samples.json").read_text())
REPO = Path(__file__).resolve().parents[3]
ALLOWED = ("select", "with", "show", "describe", "explain", "numbers", "view")
REFUSED = {
    "file": "file()", "file_in_join": "url()", "scalar_file": "function file()",
    "python": "Python()", "dict": "dictGet()", "explain_file": "s3()", "outfile": "OUTFILE",
}
TABLE_FUNCTIONS = frozenset({"file", "url", "s3", "python", "numbers", "remote", "mysql"})


def refused(sql: str) -> guard.Refused:
    with pytest.raises(guard.Refused) as info:
        guard.single_statement(sql)
    return info.value


def test_one_statement_per_request():
    assert guard.single_statement("SELECT 1;") == "SELECT 1"
    assert guard.single_statement("-- a comment; with a semicolon\nSELECT ';'") .endswith("';'")
    error = refused("SELECT 1; DROP TABLE stagelog.labels")
    assert error.code == 62 and "Multi-statements" in str(error)
    assert refused("  ;  ").code == 62


@pytest.mark.parametrize("sql", [
    "DROP TABLE stagelog.stage_events", "INSERT INTO stagelog.predictions VALUES (1)",
    "INSERT INTO FUNCTION file('/tmp/x.csv') SELECT 1", "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1", "CREATE TABLE t (x UInt8) ENGINE = Memory", "ALTER TABLE t DELETE "
    "WHERE 1", "SET readonly = 0", "TRUNCATE TABLE stagelog.labels", "OPTIMIZE TABLE t",
    "GRANT ALL ON *.* TO default", "USE system", "/* hidden */ DROP DATABASE stagelog",
])
def test_only_read_statements_pass(sql):
    error = refused(sql)
    assert error.code == 164 and "only SELECT, SHOW, DESCRIBE, EXPLAIN and WITH" in str(error)


def test_into_outfile_is_refused_but_not_inside_a_string():
    assert "OUTFILE" in str(refused("SELECT 1 INTO   OUTFILE '/tmp/x'"))
    assert guard.single_statement("SELECT 'INTO OUTFILE'") == "SELECT 'INTO OUTFILE'"


@pytest.mark.parametrize("name", ALLOWED)
def test_read_statements_and_computed_or_stored_sources_pass(name):
    sql, ast = SAMPLES[name]
    checked = guard.check_ast(sql, ast, TABLE_FUNCTIONS)
    assert checked.sql == sql
    assert checked.output_format == ("JSON" if name == "select" else None)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_functions_that_leave_the_store_are_refused(name):
    sql, ast = SAMPLES[name]
    with pytest.raises(guard.Refused, match=r"not allowed") as info:
        guard.check(sql, lambda _: ast, TABLE_FUNCTIONS)
    assert REFUSED[name].lower() in str(info.value).lower()


def test_unknown_unqualified_names_count_as_table_functions_without_the_list():
    sql, ast = SAMPLES["python"]
    with pytest.raises(guard.Refused):
        guard.check_ast(sql, ast)  # no system.table_functions list: refused all the same
    sql, ast = SAMPLES["view"]
    assert guard.check_ast(sql, ast).node == "SelectWithUnionQuery"  # db.view(...) is stored


ENGINE_SCRIPT = """
import json, sys
import chdb
samples = json.loads(open(sys.argv[1]).read())
conn = chdb.connect(":memory:")
conn.query("SET readonly = 1")
out = {}
for name, (sql, _) in samples.items():
    result = conn.query("EXPLAIN AST " + sql, "TSVRaw", params={"id": "1"})
    out[name] = bytes(result.bytes()).decode()
print(json.dumps(out))
"""


def test_samples_match_the_engine():
    proc = subprocess.run(
        [sys.executable, "-c", ENGINE_SCRIPT, str(Path(__file__).parent / "ast_samples.json")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    engine = json.loads(proc.stdout.strip().splitlines()[-1])
    assert engine == {name: ast for name, (_, ast) in SAMPLES.items()}
