"""``stagelog.otel_traces``: a request as an OpenTelemetry trace, in the exporter's columns.

The expected columns are those of the OpenTelemetry Collector's ClickHouse exporter
(``exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql``, without its ALIAS
columns). chDB runs in a child process (one data path per process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXPORTER_COLUMNS = [
    ("Timestamp", "DateTime64(9"), ("TraceId", "String"), ("SpanId", "String"),
    ("ParentSpanId", "String"), ("TraceState", "String"), ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"), ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"), ("ScopeName", "String"),
    ("ScopeVersion", "String"), ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"), ("StatusCode", "LowCardinality(String)"), ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9)"), ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"), ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
]

SCRIPT = """
import json, sys
from logging_backend import store
client = store.connect("chdb://" + sys.argv[1])
store.migrate(client)
client.command(
    "INSERT INTO stagelog.stage_events (ts, request_id, stage, model_name, model_version, "
    "status, error, wall_ms, cpu_ms, gpu_ms, device, rss_bytes, host, pid) VALUES "
    "('2026-12-01 10:00:00.000000', 'r1', 'preprocess', 'preprocess', '1', 'ok', '', 2, 1, "
    "NULL, 'cpu', 1, 'h', 7), "
    "('2026-12-01 10:00:00.003000', 'r1', 'features', 'features', '1', 'ok', '', 3, 1, NULL, "
    "'cpu', 1, 'h', 7), "
    "('2026-12-01 10:00:00.007000', 'r1', 'mlp', 'mlp', '2', 'error', 'boom', 1.5, 1, 0.5, "
    "'gpu:0', 1, 'h', 7), "
    "('2026-12-01 10:00:01.000000', 'r2', 'preprocess', 'preprocess', '1', 'ok', '', 1, 1, "
    "NULL, 'cpu', 1, 'h', 7)")
columns = [(r[0], r[1]) for r in client.query("DESCRIBE stagelog.otel_traces").result_rows]
spans = client.query(
    "SELECT SpanName, SpanKind, SpanId, ParentSpanId, Duration, StatusCode, StatusMessage, "
    "ServiceName, SpanAttributes, toString(Timestamp) FROM stagelog.otel_traces "
    "WHERE TraceId = 'r1' ORDER BY Timestamp, SpanKind DESC").result_rows
traces = client.query("SELECT uniqExact(TraceId), countIf(ParentSpanId = '') "
                      "FROM stagelog.otel_traces").result_rows[0]
print(json.dumps({"columns": columns, "spans": spans, "traces": traces}, default=str))
"""


def test_otel_traces_is_one_trace_per_request_with_a_span_per_stage(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store")], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [name for name, _ in doc["columns"]] == [name for name, _ in EXPORTER_COLUMNS]
    for (name, kind), (_, expected) in zip(doc["columns"], EXPORTER_COLUMNS, strict=True):
        assert kind.startswith(expected), (name, kind)
    root, *stages = doc["spans"]
    assert root[:2] == ["pipeline", "Server"] and root[3] == ""
    assert root[4] == 8_500_000  # 10:00:00.000 to 10:00:00.007 + 1.5 ms, in ns
    assert root[5:7] == ["Error", "boom"]
    assert [s[0] for s in stages] == ["preprocess", "features", "mlp"]
    assert all(s[1] == "Internal" and s[3] == root[2] for s in stages)
    assert len({s[2] for s in doc["spans"]}) == 4 and all(len(s[2]) == 16 for s in doc["spans"])
    assert [s[4] for s in stages] == [2_000_000, 3_000_000, 1_500_000]
    mlp = stages[2]
    assert mlp[5:8] == ["Error", "boom", "mlp"]
    assert mlp[8]["model.version"] == "2" and mlp[8]["device"] == "gpu:0"
    assert mlp[8]["gpu_ms"] == "0.5" and "gpu_ms" not in stages[0][8]
    assert doc["traces"] == [2, 2]  # two requests, one root span each
