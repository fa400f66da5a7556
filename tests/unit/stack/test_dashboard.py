"""Every SQL query of the provisioned Grafana dashboard runs against the real schema.

The migrations are applied to a temporary embedded ClickHouse (chDB) through
``logging_backend.store``, a few rows of each kind are inserted, and each panel's query runs
after its Grafana macros are expanded exactly as the ClickHouse data-source plugin expands them
(``pkg/macros/macros.go`` of grafana-clickhouse-datasource 4.14.1, the version
docker/grafana/Dockerfile installs). A renamed column or table in a migration fails here, so the
dashboard cannot drift from the schema.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from logging_backend import store
from logging_backend.store import rollups

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "stagelog.json"
DATASOURCE = ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FROM = NOW - timedelta(hours=1)
TO = NOW + timedelta(minutes=1)
INTERVAL_S = 60


def _args(sql: str, open_at: int) -> tuple[list[str], int]:
    """Split the macro arguments starting at ``sql[open_at] == '('``; return them and the end."""
    depth, current, args = 0, [], []
    for i in range(open_at, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return [a for a in args if a], i + 1
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    raise ValueError(f"unbalanced macro arguments in {sql[open_at:open_at + 60]!r}")


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """Expand the data-source plugin's macros as its backend does (macros.go, v4.14.1)."""
    s, e = int(start.timestamp()), int(end.timestamp())
    s_ms, e_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    interval_s = max(interval_s, 1)

    def dt(t: int) -> str:
        return f"toDateTime({t})"

    def dt64(t: int) -> str:
        return f"fromUnixTimestamp64Milli({t})"

    def date(t: datetime) -> str:
        return f"toDate('{t.strftime('%Y-%m-%d')}')"

    expand = {
        "fromTime": lambda a: dt(s),
        "toTime": lambda a: dt(e),
        "fromTime_ms": lambda a: dt64(s_ms),
        "toTime_ms": lambda a: dt64(e_ms),
        "timeFilter": lambda a: f"{a[0]} >= {dt(s)} AND {a[0]} <= {dt(e)}",
        "timeFilter_ms": lambda a: f"{a[0]} >= {dt64(s_ms)} AND {a[0]} <= {dt64(e_ms)}",
        "dateFilter": lambda a: f"{a[0]} >= {date(start)} AND {a[0]} <= {date(end)}",
        "dateTimeFilter": lambda a: (
            f"({a[0]} >= {date(start)} AND {a[0]} <= {date(end)}) AND "
            f"({a[1]} >= {dt(s)} AND {a[1]} <= {dt(e)})"),
        "timeInterval": lambda a: (
            f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {interval_s} second)"),
        "timeInterval_ms": lambda a: (
            f"toStartOfInterval(toDateTime64({a[0]}, 3), "
            f"INTERVAL {interval_s * 1000} millisecond)"),
        "interval_s": lambda a: str(interval_s),
    }
    expand["dt"] = expand["dateTimeFilter"]
    arity = {"timeFilter": 1, "timeFilter_ms": 1, "dateFilter": 1, "dateTimeFilter": 2, "dt": 2,
             "timeInterval": 1, "timeInterval_ms": 1}
    out, pos = [], 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        if name not in expand:
            raise ValueError(f"macro $__{name} is not one the ClickHouse plugin expands")
        out.append(sql[pos:match.start()])
        args: list[str] = []
        pos = match.end()
        if name in arity:
            if pos >= len(sql) or sql[pos] != "(":
                raise ValueError(f"macro $__{name} needs arguments")
            args, pos = _args(sql, pos)
            if len(args) != arity[name]:
                raise ValueError(f"macro $__{name} takes {arity[name]} argument(s), got {args}")
        out.append(expand[name](args))
    out.append(sql[pos:])
    return "".join(out)


def dashboard_queries() -> list[tuple[str, str, int]]:
    """(where, rawSql, format) for every panel target and annotation of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    found = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((f"panel {panel['title']!r}", target["rawSql"], target["format"]))
            walk(panel.get("panels", []))

    walk(dash["panels"])
    for annotation in dash["annotations"]["list"]:
        found.append((f"annotation {annotation['name']!r}", annotation["target"]["rawSql"],
                      annotation["target"]["format"]))
    for variable in dash["templating"]["list"]:
        found.append((f"variable {variable['name']!r}", variable["query"], 1))
    return found


QUERIES = dashboard_queries()


def test_macro_expansion_matches_the_plugin():
    # Cases from the plugin's macros_test.go (from 1415792726, to 1447328726, interval 20 s).
    start = datetime.fromtimestamp(1415792726, timezone.utc)
    end = datetime.fromtimestamp(1447328726, timezone.utc)
    assert expand_macros("select * from foo where $__timeFilter(cast(sth as timestamp))",
                         start, end, 20) == (
        "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) "
        "AND cast(sth as timestamp) <= toDateTime(1447328726)")
    assert expand_macros("SELECT $__timeInterval(t) AS time, x / $__interval_s", start, end,
                         20) == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 20 second) AS time, x / 20")
    assert expand_macros("$__fromTime, $__toTime", start, end, 20) == (
        "toDateTime(1415792726), toDateTime(1447328726)")
    with pytest.raises(ValueError, match="not one the ClickHouse plugin expands"):
        expand_macros("SELECT $__unixEpochFilter(t)", start, end, 20)


def test_dashboard_is_provisioned_on_the_clickhouse_datasource():
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("latency", "throughput", "error", "decision", "gpu utilisation", "gpu memory",
                  "collector: spool backlog"):
        assert topic in titles


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path_factory.mktemp('dashboard') / 'ch'}")
    store.migrate(c)
    load_sample_rows(c)
    yield c
    store.close_all()


def load_sample_rows(c) -> None:
    """A few minutes of one host's traffic: every stage, an error, GPU members, samples."""
    stages = ["preprocess", "features", "mlp", "forest", "logreg", "aggregate"]
    events, predictions, samples = [], [], []
    for minute in range(5):
        for i in range(4):
            ts = NOW - timedelta(minutes=10 - minute, seconds=i)
            rid = f"req-{minute}-{i}"
            for stage in stages:
                failed = stage == "features" and i == 3
                member = stage in ("mlp", "forest", "logreg")
                events.append([ts, rid, 2, stage, stage, "1", "error" if failed else "ok",
                               "row 1: field 'amount': must be a finite number >= 0"
                               if failed else "", 1.0 + i, 0.5 + i,
                               0.25 if member else None, "gpu:0" if member else "cpu", "node1"])
            for model in ("mlp", "forest", "logreg", "aggregate"):
                probs = [0.7, 0.2, 0.1] if i % 2 else [0.2, 0.7, 0.1]
                cls = "legit" if i % 2 else "card_fraud"
                decision = ("approve" if i % 2 else "decline") if model == "aggregate" else ""
                predictions.append([ts, rid, 0, model, model, "1", probs, cls, decision])
        for gpu in (0, 1):
            samples.append([NOW - timedelta(minutes=10 - minute), "node1", 1, "gpu", 0.0, 0,
                            gpu, 40.0 + gpu, 2_000_000_000, 80_000_000_000])
        samples.append([NOW - timedelta(minutes=10 - minute), "node1", 42, "tritonserver",
                        120.0, 3_000_000_000, None, None, None, None])
    c.insert("stagelog.stage_events", events, column_names=[
        "ts", "request_id", "rows", "stage", "model_name", "model_version", "status", "error",
        "wall_ms", "cpu_ms", "gpu_ms", "device", "host"])
    c.insert("stagelog.predictions", predictions, column_names=[
        "ts", "request_id", "row", "stage", "model", "model_version", "probs", "predicted_class",
        "decision"])
    c.insert("stagelog.system_samples", samples, column_names=[
        "ts", "host", "pid", "source", "cpu_percent", "rss_bytes", "gpu_index", "gpu_util",
        "gpu_mem_used", "gpu_mem_total"])
    c.insert("stagelog.spool_drops", [[NOW - timedelta(minutes=5), "node1", "stage_tensors", 1,
                                       10, 4096, "budget", "test"]],
             column_names=["ts", "host", "target_table", "segments", "rows", "bytes", "reason",
                           "detail"])
    c.insert("stagelog.collector_health", [
        [NOW - timedelta(minutes=10 - minute), "node1", 7, minute, minute << 20, 0.5 * minute,
         100 * minute, 4 * minute, 0, 0, 0, 0.4, 3, 1, {"stage_events": 100 * minute},
         {"budget": 1} if minute == 4 else {}]
        for minute in range(5)],
        column_names=["ts", "host", "pid", "pending_segments", "pending_bytes",
                      "oldest_segment_age_s", "rows_shipped", "inserts", "insert_failures",
                      "transient_failures", "dropped_segments", "last_insert_age_s", "queries",
                      "queries_refused", "rows_by_table", "drops_by_reason"])
    c.insert("stagelog.annotations", [["note-1", NOW - timedelta(minutes=20), "event",
                                       "load test", "", NOW - timedelta(minutes=15), None,
                                       ["load"], "test"]],
             column_names=["id", "ts", "kind", "title", "body", "valid_from", "valid_to", "tags",
                           "author"])
    c.insert("stagelog.alerts", [[NOW - timedelta(minutes=4), "a-1", "feature_drift", "warning",
                                  "firing", 2.5, 0.25, 600, "feature_drift: 2.5 > 0.25", "node1"]],
             column_names=["ts", "id", "rule", "severity", "state", "value", "threshold",
                           "window_s", "message", "host"])
    c.insert("stagelog.replays", [[NOW - timedelta(minutes=3), "replay-1", "req-0-0", "raw",
                                   stage, "1", "1", 1, True, 0.0, 0, 0, "{}"] for stage in stages],
             column_names=["ts", "replay_id", "request_id", "source", "stage", "model_version",
                           "logged_version", "rows", "match", "max_abs_diff", "decision_flips",
                           "class_flips", "detail"])
    rollups.run_once(c)  # the hourly rollups, as the collector makes them (migration 0090)


@pytest.mark.parametrize(("where", "sql", "fmt"), QUERIES, ids=[q[0] for q in QUERIES])
def test_dashboard_query_runs_against_the_schema(client, where, sql, fmt):
    expanded = expand_macros(sql, FROM, TO, INTERVAL_S)
    assert "$" not in expanded, f"{where}: unexpanded variable left in {expanded!r}"
    result = client.query(expanded)
    assert result.result_rows, f"{where}: no rows over the sample data"
    names = list(result.column_names)
    assert len(set(names)) == len(names), f"{where}: duplicate column names {names}"
    if fmt == 0:  # Grafana time series: a DateTime column named `time` first
        assert names[0] == "time", f"{where}: first column must be `time`, got {names}"
        assert result.column_types[0].base_type.startswith("DateTime"), where
    if where.startswith("annotation"):
        assert names[:2] == ["time", "timeEnd"] and "text" in names, names
