"""`stagelog replay` on the real stack: every stage matches bit for bit on the served version,
the other mlp version shows its differences, the live state is untouched, replays are logged
with a link and left out of production metrics."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from feedback_helpers import query_for, wait_for
from running import RunningStack
from typer.testing import CliRunner

from logging_backend.insights import replay as log_replay
from logging_backend.stack import replay as runner
from logging_backend.stack.cli import app
from riskpipe.features import FeatureBuilder
from riskpipe.preprocess import Preprocessor
from training.generator import generate

SEED = 9191  # card and event ids (c9191-…, e9191-…) that no other test sends


def _landed(query, request_id: str, tensors: int = 20) -> None:
    """Wait until every stage's tensors of the request are in (each stage ships on its own:
    a count alone can be reached with one stage still on its way, as CI once saw)."""
    rows = wait_for(query, "SELECT count() AS n, uniqExact(stage) AS stages "
                    "FROM stagelog.stage_tensors WHERE request_id = {r:String}",
                    {"r": request_id},
                    lambda rows: int(rows[0]["n"]) >= tensors
                    and int(rows[0]["stages"]) == len(log_replay.STAGES))
    assert int(rows[0]["n"]) >= tensors, f"{request_id} did not land"
    assert int(rows[0]["stages"]) == len(log_replay.STAGES), f"{request_id}: {rows[0]}"


@pytest.fixture(scope="module")
def served(stack: RunningStack):
    """Two requests on the same cards (history, a duplicate, a missing timestamp), logged."""
    events = [e.event for e in generate(60, seed=SEED, dirty=0.0)]
    first, second = events[:30], events[30:45]
    second.append(dict(first[3]))  # a duplicate of an event of the first request
    missing = dict(events[45])
    missing.pop("timestamp")  # imputed with the time of arrival
    second.append(missing)
    ids = []
    for batch in (first, second):
        rid = f"rp-src-{uuid.uuid4().hex[:8]}"
        stack.score(batch, request_id=rid)
        ids.append(rid)
    query = query_for(stack)
    for rid in ids:
        _landed(query, rid)
    return {"ids": ids, "events": events, "batches": (first, second), "query": query}


def test_served_version_matches_bit_for_bit_and_live_state_is_untouched(stack, served):
    query = served["query"]
    outcomes = runner.replay(stack.client, query, served["ids"])
    for outcome in outcomes:
        assert not outcome.error, outcome.error
        assert [r.stage for r in outcome.results] == list(log_replay.STAGES)
        for r in outcome.results:
            assert r.match and r.max_abs_diff == 0.0, (r.stage, r.note)
            assert r.model_version == r.logged_version
    # the second request really used state: history and the duplicate flag
    logged = log_replay.fetch(query, served["ids"][1])
    # the landing check's SQL on the real store: all in; a stage taken out is named
    assert log_replay.unlanded(query, logged) == []
    partial = log_replay.Logged(logged.request_id, {
        k: v for k, v in logged.tensors.items() if k[0] != "forest"}, logged.versions)
    assert log_replay.unlanded(query, partial) == ["forest"]
    processed = [json.loads(s) for s in logged.get("preprocess", "output", "PROCESSED").strings]
    assert processed[-2]["duplicate"] and "timestamp" in processed[-1]["imputed"]
    assert max(logged.get("features", "state", "card_state.txn_count").numbers) > 0

    # live state untouched: a third request scores as if no replay had happened
    third = [e for e in served["events"][46:60]]
    rid = f"rp-after-{uuid.uuid4().hex[:8]}"
    stack.score(third, request_id=rid)
    _landed(query, rid)
    pre, feats = Preprocessor(), FeatureBuilder()
    for batch in (*served["batches"], third):
        rows = pre.process([json.dumps(e).encode() for e in batch])
        want, _ = feats.build(rows)
    got = log_replay.fetch(query, rid).get("features", "output", "FEATURES")
    assert np.array_equal(np.asarray(got.numbers, dtype=np.float32), want.ravel())


def test_other_mlp_version_shows_its_differences(stack, served):
    (outcome,) = runner.replay(stack.client, served["query"], served["ids"][:1], "raw",
                               model="mlp", version="1")
    assert not outcome.error, outcome.error
    by_stage = {r.stage: r for r in outcome.results}
    assert set(by_stage) == set(log_replay.STAGES)
    for stage in ("preprocess", "features", "forest", "logreg"):
        assert by_stage[stage].match, stage
    mlp = by_stage["mlp"]
    assert (mlp.model_version, mlp.logged_version) == ("1", "2")
    assert not mlp.match and mlp.max_abs_diff > 0
    assert len(mlp.probabilities) == 30 and len(mlp.probabilities[0]["replayed"]) == 3
    assert not by_stage["aggregate"].match


def test_one_member_from_its_logged_features(stack, served):
    (outcome,) = runner.replay(stack.client, served["query"], served["ids"][1:], "features",
                               model="mlp")
    assert not outcome.error, outcome.error
    assert [(r.stage, r.match) for r in outcome.results] == [("mlp", True), ("aggregate", True)]


def test_replays_are_linked_and_left_out_of_production_metrics(stack, served):
    query = served["query"]
    runner.replay(stack.client, query, served["ids"][:1])
    rows = query("SELECT replay_id, stage, match FROM stagelog.replays "
                 "WHERE request_id = {r:String}", {"r": served["ids"][0]})
    assert {r["stage"] for r in rows} == set(log_replay.STAGES)
    replay_ids = {r["replay_id"] for r in rows}
    assert all(r.startswith("replay-") for r in replay_ids)
    logged = query("SELECT count() AS n FROM stagelog.predictions "
                   "WHERE request_id IN {ids:Array(String)}", {"ids": list(replay_ids)})
    assert int(logged[0]["n"]) > 0  # the replay's own arrows are logged ...
    for view in ("member_agreement", "feature_values"):
        counted = query(f"SELECT count() AS n FROM stagelog.{view} "
                        "WHERE startsWith(request_id, 'replay-')", None)
        assert int(counted[0]["n"]) == 0, view  # ... and left out of production metrics


def test_cli_json_reports_match_for_every_stage(stack, served):
    result = CliRunner().invoke(app, ["replay", served["ids"][1], "--json",
                                      "--home", str(stack.home)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [line["stage"] for line in lines] == list(log_replay.STAGES)
    assert all(line["match"] is True and line["max_abs_diff"] == 0.0 for line in lines)
    assert all({"stage", "model_version", "match", "max_abs_diff"} <= set(line) for line in lines)


def test_window_form_with_a_filter_gives_a_shadow_evaluation(stack, served):
    from clients.feedback import FeedbackReport, send_reports

    labels = [FeedbackReport(served["ids"][0], row, "label", "legit") for row in range(30)]
    send_reports(stack.client, labels)
    wait_for(served["query"], "SELECT count() AS n FROM stagelog.labels_latest "
             "WHERE request_id = {r:String}", {"r": served["ids"][0]},
             lambda rows: int(rows[0]["n"]) >= 30)
    result = CliRunner().invoke(app, [
        "replay", "--since", "-30m", "--where", "startsWith(request_id, 'rp-src-')",
        "--model", "mlp", "--version", "1", "--home", str(stack.home)])
    assert result.exit_code == 0, result.output
    assert result.output.count("replay of rp-src-") == 2, result.output
    assert "shadow evaluation on the labelled rows" in result.output
    assert "replayed" in result.output and "served" in result.output


def test_shipping_lag_of_served_rows_is_measured(stack, served):
    rows = served["query"]("SELECT count() AS n, min(lag_s) AS lo, max(lag_s) AS hi "
                           "FROM stagelog.shipping_lag WHERE request_id = {r:String}",
                           {"r": served["ids"][0]})
    assert int(rows[0]["n"]) == 6  # one stage event per stage
    assert 0 < float(rows[0]["lo"]) <= float(rows[0]["hi"]) < 60
