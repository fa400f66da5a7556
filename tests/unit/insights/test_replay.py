"""insights.replay without a server: the replay parameter and the per-stage comparison."""

import json

import pytest

from logging_backend.insights import replay
from logging_backend.insights.replay import Logged, ReplayError, Tensor
from riskpipe import replay as stage_replay

PROCESSED = [
    {"event_id": "e1", "duplicate": False, "imputed": [], "ts": 1.5},
    {"event_id": "e2", "duplicate": True, "imputed": ["timestamp"], "ts": 1700000000.123456},
]
CARD = {"txn_count": [0.0, 3.0], "mean_amount_eur": [0.0, 12.345678901234567],
        "velocity_1h": [0.0, 1.0], "velocity_24h": [0.0, 2.0], "updated": [1.0, 0.0]}


def logged(probs, decisions=("approve", "decline"), rid="r-1", mlp_version="2"):
    tensors = {
        ("preprocess", "input", "RAW"): Tensor((2, 1), strings=[b'{"a":1}', b'{"b":2}']),
        ("preprocess", "output", "REQUEST_ID"): Tensor((2, 1), strings=[rid.encode()] * 2),
        ("preprocess", "output", "PROCESSED"): Tensor(
            (2, 1), strings=[json.dumps(r).encode() for r in PROCESSED]),
        ("features", "state", "card_state.last_device_id"): Tensor((2,), strings=[b"", b"d9"]),
        ("mlp", "output", "PROBS"): Tensor((2, 3), numbers=[p for row in probs for p in row]),
        ("aggregate", "output", "PROBABILITIES"): Tensor(
            (2, 3), numbers=[p for row in probs for p in row]),
        ("aggregate", "output", "DECISION"): Tensor(
            (2, 1), strings=[d.encode() for d in decisions]),
    }
    for key, values in CARD.items():
        tensors[("features", "state", f"card_state.{key}")] = Tensor((2,), numbers=values)
    versions = {"preprocess": "1", "features": "1", "mlp": mlp_version, "aggregate": "1"}
    return Logged(rid, tensors, versions)


def test_the_replay_parameter_is_what_the_stages_read():
    state = stage_replay.parse(replay.replay_parameter(logged([[1, 0, 0], [0, 1, 0]])))
    assert state.of == "r-1" and state.duplicate == (False, True)
    assert state.arrival_ts == 1700000000.123456  # the imputed row's time of arrival
    rows = state.card_rows(2)
    assert rows[1] == {"txn_count": 3, "mean_amount_eur": 12.345678901234567, "velocity_1h": 1,
                       "velocity_24h": 2, "last_device_id": "d9", "updated": False}


def test_identical_outputs_match_and_the_request_id_is_ignored():
    want = logged([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    got = logged([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], rid="replay-x")
    results = replay.compare(want, got)
    assert [r.stage for r in results] == ["preprocess", "features", "mlp", "aggregate"]
    assert all(r.match and r.max_abs_diff == 0 for r in results)


def test_differences_flips_and_missing_tensors_are_reported():
    want = logged([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    got = logged([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]], decisions=("approve", "approve"),
                 mlp_version="1")
    del got.tensors[("features", "state", "card_state.txn_count")]
    by_stage = {r.stage: r for r in replay.compare(want, got)}
    assert by_stage["preprocess"].match
    assert not by_stage["features"].match and "txn_count" in by_stage["features"].note
    mlp = by_stage["mlp"]
    assert not mlp.match and mlp.max_abs_diff == pytest.approx(0.5)
    assert (mlp.model_version, mlp.logged_version, mlp.class_flips) == ("1", "2", 1)
    assert by_stage["aggregate"].decision_flips == 1
    assert mlp.probabilities[1]["logged"] == [0.1, 0.8, 0.1]
    assert mlp.as_json()["max_abs_diff"] == pytest.approx(0.5)


def test_a_missing_arrow_names_what_is_missing():
    empty = Logged("r-2", {}, {})
    with pytest.raises(ReplayError, match="no logged input 'RAW' of preprocess"):
        empty.get("preprocess", "input", "RAW")


def test_shadow_metrics_score_both_sides_on_labelled_rows():
    want = logged([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    got = logged([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]], mlp_version="1")
    results = [r for r in replay.compare(want, got) if r.stage == "mlp"]
    out = replay.shadow_metrics(results, {("r-1", 0): "legit", ("r-1", 1): "card_fraud"})
    served, shadow = out
    assert (served["side"], served["model_version"], served["accuracy"]) == ("served", "2", 1.0)
    assert (shadow["side"], shadow["model_version"], shadow["accuracy"]) == ("replayed", "1", 0.5)
    assert shadow["log_loss"] > served["log_loss"]


def test_stages_not_yet_in_the_store_are_named_and_deliberate_omissions_are_not():
    # the fixture's request has tensors of preprocess, features, mlp and aggregate only
    events = [
        {"stage": "preprocess", "policy": "full", "kept": ""},
        {"stage": "forest", "policy": "full", "kept": ""},  # event in, tensors still shipping
        {"stage": "logreg", "policy": "sampled", "kept": "sampled_out"},  # kept none: fine
    ]
    asked = []

    def query(sql, params):
        asked.append(params)
        return events

    got = replay.unlanded(query, logged([[1, 0, 0], [0, 1, 0]]))
    assert got == ["forest"]
    assert asked == [{"request_id": "r-1"}]
    # a stage with no stage_events row at all has not landed either
    assert replay.unlanded(lambda sql, params: [], logged([[1, 0, 0]] * 2)) == ["forest", "logreg"]
    # every stage's tensors there: no query
    assert replay.unlanded(query, logged([[1, 0, 0]] * 2), ("mlp", "aggregate")) == []
    assert len(asked) == 1
