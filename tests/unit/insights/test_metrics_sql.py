"""The metric views (migrations 0010-0014) on known data, in the real embedded engine."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

# Recent: the tables drop rows past their TTL at insert time.
from logging_backend import store
from logging_backend.insights import drift, metrics

# Recent: the tables drop rows past their TTL at insert time.
T0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=1)
CLASSES = ("legit", "card_fraud", "account_takeover")
PRED_COLS = [
    "ts", "request_id", "row", "stage", "model", "model_version", "class_probs", "probs",
    "predicted_class", "decision",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path_factory.mktemp('metrics') / 'ch'}")
    store.migrate(c)
    yield c
    store.close_all()


def pred(request_id, row, model, probs, version="1", decision="", minutes=0):
    probs = [float(p) for p in probs]
    return [
        T0 + timedelta(minutes=minutes), request_id, row, model, model, version,
        dict(zip(CLASSES, probs, strict=True)), probs, CLASSES[int(np.argmax(probs))], decision,
    ]


def feedback_row(request_id, row, value, minutes=0, detail=""):
    # Same (request_id, row, value) -> same report id, as adapters.feedback makes them.
    return [T0 + timedelta(minutes=minutes), request_id, row, value, detail,
            f"{request_id}/{row}/{value}"]


FB_COLS = ["ts", "request_id", "row", "value", "detail", "report_id"]


@pytest.fixture(scope="module")
def known(client):
    """Four scored rows; labels for three, one label repeated and one corrected."""
    rows = [
        # request, row, mlp, forest, logreg  (aggregate = mean)
        ("r1", 0, [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.7, 0.2, 0.1]),
        ("r1", 1, [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]),
        ("r2", 0, [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.1, 0.3, 0.6]),
        ("r3", 0, [0.5, 0.4, 0.1], [0.5, 0.4, 0.1], [0.5, 0.4, 0.1]),
    ]
    data = []
    for rid, row, *members in rows:
        for name, probs in zip(("mlp", "forest", "logreg"), members, strict=True):
            data.append(pred(rid, row, name, probs))
        data.append(pred(rid, row, "aggregate", np.mean(members, axis=0), decision="approve"))
    client.insert("stagelog.predictions", data, column_names=PRED_COLS)
    labels = [
        feedback_row("r1", 0, "legit"),
        feedback_row("r1", 0, "legit", minutes=1),  # repeated report: same report_id
        feedback_row("r1", 1, "legit"),  # corrected below
        feedback_row("r1", 1, "card_fraud", minutes=2),
        feedback_row("r2", 0, "account_takeover"),
        feedback_row("nope", 0, "legit"),  # never scored
    ]
    client.insert("stagelog.labels", labels, column_names=FB_COLS)
    actions = [
        feedback_row("r1", 0, "approve"),
        feedback_row("r1", 0, "approve"),
        feedback_row("r2", 0, "block_card", detail='{"executed": false}'),
    ]
    client.insert("stagelog.actions", actions, column_names=FB_COLS)
    return rows


def by_hand(rows, member_index):
    truth = {("r1", 0): 0, ("r1", 1): 1, ("r2", 0): 2}
    correct, losses = [], []
    for rid, row, *members in rows:
        if (rid, row) not in truth:
            continue
        probs = np.mean(members, axis=0) if member_index is None else members[member_index]
        correct.append(int(np.argmax(probs)) == truth[(rid, row)])
        losses.append(-math.log(max(probs[truth[(rid, row)]], 1e-15)))
    return sum(correct) / len(correct), sum(losses) / len(losses)


def test_online_accuracy_equals_hand_computed_values(client, known):
    got = {
        r[0]: r[1:]
        for r in client.query(
            "SELECT model, labelled_rows, accuracy, log_loss FROM stagelog.online_accuracy"
        ).result_rows
    }
    for index, model in ((0, "mlp"), (1, "forest"), (2, "logreg"), (None, "aggregate")):
        accuracy, log_loss = by_hand(known, index)
        assert got[model][0] == 3
        assert got[model][1] == pytest.approx(accuracy)
        assert got[model][2] == pytest.approx(log_loss, rel=1e-5)
    # forest gets r1/1 wrong (0.6 legit vs card_fraud): 2 of 3.
    assert got["forest"][1] == pytest.approx(2 / 3)


def test_repeated_reports_count_once_and_unscored_ids_are_unmatched(client, known):
    assert client.query(
        "SELECT reports FROM stagelog.labels_latest WHERE request_id = 'r1' AND row = 0"
    ).result_rows == [(1,)]
    assert client.query(
        "SELECT request_id, kind FROM stagelog.feedback_unmatched"
    ).result_rows == [("nope", "label")]
    outcomes = client.query(
        "SELECT decision, action, executed, rows FROM stagelog.decision_outcomes ORDER BY action"
    ).result_rows
    assert outcomes == [("approve", "approve", 1, 1), ("approve", "block_card", 0, 1)]


def test_member_agreement_and_decision_mix(client, known):
    agree = dict(
        client.query("SELECT request_id || '/' || toString(row), members_agree "
                     "FROM stagelog.member_agreement").result_rows
    )
    assert agree == {"r1/0": 1, "r1/1": 0, "r2/0": 1, "r3/0": 1}
    assert client.query(
        "SELECT rows, agreeing_rows FROM stagelog.member_agreement_1m"
    ).result_rows == [(4, 3)]
    assert client.query(
        "SELECT decision, sum(rows) FROM stagelog.decision_mix_1m GROUP BY decision"
    ).result_rows == [("approve", 4)]


def test_feature_psi_view_matches_the_python_reference(client):
    rng = np.random.default_rng(3)
    names = ["a", "b"]
    baselines = drift.make_baseline(names, rng.normal(size=(5000, 2)))
    query = metrics.client_query(client)
    metrics.load_baseline(query, baselines, features_version="1", source="test")
    served = {0: rng.normal(0, 1, size=(200, 2)), 5: rng.normal(1.5, 1, size=(200, 2))}
    tensors = []
    for minutes, matrix in served.items():
        for i in range(0, 200, 50):
            chunk = matrix[i:i + 50]
            tensors.append([T0 + timedelta(minutes=minutes), f"f{minutes}-{i}", "features", "1",
                            "output", "FEATURES", "float32", list(chunk.shape),
                            chunk.ravel().tolist()])
    client.insert(
        "stagelog.stage_tensors", tensors,
        column_names=["ts", "request_id", "stage", "model_version", "direction", "name", "dtype",
                      "shape", "values_f64"],
    )
    for minutes, matrix in served.items():
        window = (T0 + timedelta(minutes=minutes), T0 + timedelta(minutes=minutes + 1))
        got = {r["feature"]: r for r in metrics.feature_psi(query, *window)}
        for b in baselines:
            expected = drift.psi(b.expected, drift.fractions(b.edges, matrix[:, b.index]))
            assert got[b.feature]["rows"] == 200
            assert got[b.feature]["psi"] == pytest.approx(expected, rel=1e-6)
    calm = metrics.feature_psi(query, T0, T0 + timedelta(minutes=1))
    shifted = metrics.feature_psi(query, T0 + timedelta(minutes=5), T0 + timedelta(minutes=6))
    assert max(r["psi"] for r in calm) < 0.1 < 0.25 < min(r["psi"] for r in shifted)


def test_stage_latency_quantiles(client):
    client.insert(
        "stagelog.stage_events",
        [[T0, f"q{i}", "mlp", "mlp", "1", float(i + 1), 0.5, "ok" if i else "error"]
         for i in range(100)],
        column_names=["ts", "request_id", "stage", "model_name", "model_version", "wall_ms",
                      "cpu_ms", "status"],
    )
    row = client.query(
        "SELECT requests, errors, p50_ms, p99_ms, max_ms, p50_gpu_ms "
        "FROM stagelog.stage_latency_quantiles WHERE stage = 'mlp'"
    ).result_rows[0]
    assert row[:2] == (100, 1)
    assert row[2] == pytest.approx(np.quantile(np.arange(1, 101), 0.5), abs=1)
    assert row[3] == pytest.approx(99, abs=1)
    assert row[4] == 100
    assert row[5] is None


def test_collect_and_print_every_metric_with_overlapping_notes(client, known):
    from rich.console import Console

    from logging_backend.insights import notes
    from logging_backend.stack.cli.insights import print_metrics

    query = metrics.client_query(client)
    notes.add(query, notes.make_note("event", "PSP outage", valid_from=T0 - timedelta(hours=1),
                                     valid_to=T0 + timedelta(minutes=1)))
    notes.add(query, notes.make_note("event", "Long ago", valid_from=T0 - timedelta(days=3),
                                     valid_to=T0 - timedelta(days=2)))
    result = metrics.collect(query, drift_minutes=10)
    assert result.window[0] == T0
    assert {r["model"] for r in result.accuracy} == {"mlp", "forest", "logreg", "aggregate"}
    decisions = [(r["decision"], int(r["n"]), r["share"]) for r in result.decisions]
    assert decisions == [("approve", 4, 1)]
    assert [r["title"] for r in result.notes] == ["PSP outage"]
    assert {r["kind"] for r in result.unmatched} == {"label"}
    console = Console(record=True, width=200)
    print_metrics(result, console)
    text = console.export_text()
    for fragment in ("online accuracy", "member agreement", "decision mix", "latency per stage",
                     "feature drift", "[event]", "PSP outage"):
        assert fragment in text
    assert "Long ago" not in text


def test_report_collects_from_the_views(client, known):
    from logging_backend.insights import report

    query = metrics.client_query(client)
    client.insert(
        "stagelog.stage_events",
        [[T0 + timedelta(milliseconds=ms), "r3", stage, stage, "1", wall, wall * 0.8, "ok"]
         for stage, ms, wall in (("preprocess", 0, 0.4), ("features", 1, 0.6),
                                 ("aggregate", 3, 0.2))],
        column_names=["ts", "request_id", "stage", "model_name", "model_version", "wall_ms",
                      "cpu_ms", "status"],
    )
    data = report.collect(query, request_id="r3", drift_minutes=10)
    assert [s.stage for s in data.waterfall] == ["preprocess", "features", "aggregate"]
    assert [round(s.start_ms, 3) for s in data.waterfall] == [0.0, 1.0, 3.0]
    assert data.prediction_mix["forest"] == {"legit": 3, "account_takeover": 1}
    assert data.decision_mix == {"approve": 4}
    assert data.action_mix == {"approve": 1, "block_card": 1}
    assert "mlp" in data.latency and "preprocess" in data.latency
    assert data.accuracy and data.latency_table
    page = report.render(data)
    assert 'id="waterfall-chart"' in page and 'data-stage="features"' in page
