"""Supervisor probe rows (``stagelog-probe-*`` ids) are stored but count in no production metric.

Real embedded engine, every migration applied: production requests, a replay and probes are
inserted into the base tables; every view, rollup and query of production metrics must count
the production rows only, and the base tables keep the probes (evidence of the health checks).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from logging_backend import store
from logging_backend.insights import metrics, replay, report, traffic
from logging_backend.insights.alerts import DEFAULT_RULES, load_rules
from logging_backend.stack import stages
from logging_backend.store import rollups

NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
PROD = [f"prod-{i}" for i in range(4)]
PROBES = ["stagelog-probe-pipeline", "stagelog-probe-mlp", "stagelog-probe-forest"]
REPLAYS = ["replay-0123456789ab"]
EVERY = PROD + PROBES + REPLAYS
CLASSES = ("legit", "card_fraud", "account_takeover")
EVENT_COLS = ["ts", "request_id", "stage", "model_name", "model_version", "status", "wall_ms",
              "cpu_ms", "host", "pid"]
PRED_COLS = ["ts", "request_id", "row", "stage", "model", "model_version", "class_probs",
             "probs", "predicted_class", "decision"]
TENSOR_COLS = ["ts", "request_id", "stage", "model_version", "direction", "name", "dtype",
               "shape", "values_f64", "values_str"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path_factory.mktemp('probes') / 'ch'}")
    store.migrate(c)
    metrics.ensure_baseline(metrics.client_query(c))
    events, preds, tensors = [], [], []
    for rid in EVERY:
        # a probe fails (as the feedback probe does by design) and is slow: it would move
        # both the error rate and the latency if it were counted
        probe = not traffic.is_production(rid)
        for stage in ("preprocess", "features", "mlp", "forest", "logreg", "aggregate"):
            events.append([NOW, rid, stage, stage, "1", "error" if probe else "ok",
                           5000.0 if probe else 2.0, 1.0, "h", 1])
        for model in ("mlp", "forest", "logreg", "aggregate"):
            probs = [0.0, 0.0, 1.0] if probe else [1.0, 0.0, 0.0]
            preds.append([NOW, rid, 0, model, model, "1",
                          dict(zip(CLASSES, probs, strict=True)), probs,
                          CLASSES[2] if probe else CLASSES[0],
                          ("decline" if probe else "approve") if model == "aggregate" else ""])
        width = 4
        tensors.append([NOW, rid, "features", "1", "output", "FEATURES", "float32", [1, width],
                        [1e6 if probe else 0.5] * width, []])
        tensors.append([NOW, rid, "preprocess", "1", "output", "PROCESSED", "BYTES", [1, 1], [],
                        [json.dumps({"imputed": ["country"] if probe else []})]])
    c.insert("stagelog.stage_events", events, column_names=EVENT_COLS)
    c.insert("stagelog.predictions", preds, column_names=PRED_COLS)
    c.insert("stagelog.stage_tensors", tensors, column_names=TENSOR_COLS)
    rollups.run_once(c)  # the hourly rollups' batch job (migration 0090), as the collector does
    yield c
    store.close_all()


def one(client, sql: str, params: dict | None = None):
    return metrics.client_query(client)(sql, params)


def scalar(client, sql: str, params: dict | None = None) -> float:
    (row,) = one(client, sql, params)
    return float(next(iter(row.values())))


def test_the_probe_prefix_is_the_one_the_supervisor_sends():
    assert stages.PROBE_PREFIX == traffic.PROBE_PREFIX == "stagelog-probe-"
    assert replay.REPLAY_PREFIX == traffic.REPLAY_PREFIX
    assert not traffic.is_production("stagelog-probe-forest")
    assert not traffic.is_production("replay-1") and traffic.is_production("r-1")


def test_probe_rows_stay_in_the_base_tables(client):
    for table, per_request in (("stage_events", 6), ("predictions", 4), ("stage_tensors", 2)):
        got = scalar(client, f"SELECT count() FROM stagelog.{table} "
                     "WHERE startsWith(request_id, 'stagelog-probe-')")
        assert got == per_request * len(PROBES), table


@pytest.mark.parametrize(("sql", "want"), [
    ("SELECT count() FROM stagelog.member_agreement", len(PROD)),
    ("SELECT sum(rows) FROM stagelog.prediction_mix_1m", 4 * len(PROD)),
    ("SELECT sum(rows) FROM stagelog.decision_mix_1m", len(PROD)),
    ("SELECT countIf(decision != 'approve') FROM stagelog.decision_mix_1m", 0),
    ("SELECT uniqExact(request_id) FROM stagelog.feature_values", len(PROD)),
    ("SELECT max(value) FROM stagelog.feature_values", 0.5),
    ("SELECT sum(requests) FROM stagelog.stage_latency_quantiles", 6 * len(PROD)),
    ("SELECT sum(errors) FROM stagelog.stage_latency_quantiles", 0),
    ("SELECT max(max_ms) FROM stagelog.stage_latency_quantiles", 2.0),
    ("SELECT uniqExact(request_id) FROM stagelog.shipping_lag", len(PROD)),
    ("SELECT count() FROM stagelog.otel_traces WHERE SpanName = 'pipeline'", len(EVERY)),
])
def test_views_count_production_rows_only(client, sql, want):
    assert scalar(client, sql) == want


@pytest.mark.parametrize(("sql", "want"), [
    ("SELECT sum(requests) FROM stagelog.stage_latency_1m", 6 * len(PROD)),
    ("SELECT countIf(status != 'ok') FROM stagelog.stage_latency_1m", 0),
    ("SELECT max(wall_ms_max) FROM stagelog.stage_latency_1m", 2.0),
    ("SELECT sum(rows) FROM stagelog.prediction_rollup_1h", 4 * len(PROD)),
    ("SELECT sum(`values`) FROM stagelog.feature_rollup_1h", 4 * len(PROD)),
    ("SELECT sum(n) FROM stagelog.field_rollup_1h WHERE kind = 'rows'", len(PROD)),
    ("SELECT sum(n) FROM stagelog.field_rollup_1h WHERE kind = 'imputed'", 0),
])
def test_rollups_count_production_rows_only(client, sql, want):
    assert scalar(client, sql) == want


@pytest.mark.parametrize(("rule", "value", "n"), [
    ("error_rate", 0.0, 6 * len(PROD)),
    ("p99_latency", 2.0, 6 * len(PROD)),
    ("member_disagreement", 0.0, len(PROD)),
    ("shipping_lag", None, 6 * len(PROD)),  # rows, not requests
])
def test_shipped_alert_rules_leave_probes_out(client, rule, value, n):
    (found,) = [r for r in load_rules(DEFAULT_RULES) if r.name == rule]
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    params = {"t_from": (NOW - timedelta(hours=1)).strftime(fmt),
              "t_to": (NOW + timedelta(hours=1)).strftime(fmt)}
    if rule == "shipping_lag":  # windowed on stored_at (the insert's time), not ts
        params["t_to"] = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime(fmt)
    (row,) = one(client, found.sql, params)
    assert int(row["n"]) == n
    if value is not None:
        assert float(row["value"]) == pytest.approx(value)


def test_report_and_replay_selection_leave_probes_out(client):
    query = metrics.client_query(client)
    chosen = replay.select_requests(query, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert sorted(chosen) == sorted(PROD)
    assert "stagelog-probe-" in report._PRODUCTION and "replay-" in report._PRODUCTION


def test_upgrading_a_store_keeps_its_rollups_and_leaves_new_probes_out(tmp_path):
    """0085 on a store at 0073: rolled-up rows survive the DROP/CREATE, new probes stay out."""
    from logging_backend.store.ledger import MIGRATIONS_DIR  # noqa: PLC0415

    released = tmp_path / "released"
    released.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) <= 73:
            (released / path.name).write_text(path.read_text())
    store.close_all()
    c = store.connect(f"chdb://{tmp_path / 'ch'}")
    try:
        store.migrate(c, released)
        before = [[NOW, "old-1", "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1],
                  [NOW, "stagelog-probe-mlp", "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1]]
        c.insert("stagelog.stage_events", before, column_names=EVENT_COLS)
        assert "0085_probes_not_production.sql" in store.migrate(c)
        after = [[NOW, "new-1", "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1],
                 [NOW, "stagelog-probe-mlp", "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1]]
        c.insert("stagelog.stage_events", after, column_names=EVENT_COLS)
        rollups.run_once(c)  # since 0092 the batch job makes stage_latency_1m
        # the old probe row was rolled up before the migration and stays (documented);
        # the new one is not, and the old rows are not counted again: 2 + 1
        assert scalar(c, "SELECT sum(requests) FROM stagelog.stage_latency_1m") == 3
        assert scalar(c, "SELECT uniqExact(request_id) FROM stagelog.request_index") == 3
        assert store.missing_objects(c) == []
    finally:
        store.close_all()
