"""Online metrics on served traffic: accuracy against hand computation, PSI during drift."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from feedback_helpers import query_for, wait_for

from clients import feedback as fb
from clients.score import CLASSES
from logging_backend.insights import metrics
from training.generator import generate

BATCH = 25


def serve(stack, items, prefix):
    """Score labelled events in batches; returns [(request_id, row, probs, label)]."""
    out = []
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        rid = f"{prefix}-{start // BATCH}-{uuid.uuid4().hex[:8]}"
        result = stack.score([i.event for i in chunk], request_id=rid)
        out += [(rid, row, result.probabilities[row], item.label)
                for row, item in enumerate(chunk)]
    return out


def test_online_accuracy_equals_the_hand_computed_value(stack):
    prefix = f"acc-{uuid.uuid4().hex[:6]}"
    served = serve(stack, generate(150, seed=21), prefix)
    labelled = served[::2]  # labels arrive for half of the rows
    reports = [fb.FeedbackReport(rid, row, "label", label) for rid, row, _, label in labelled]
    for start in range(0, len(reports), 64):
        fb.send_reports(stack.client, reports[start : start + 64])
    accuracy = float(np.mean([CLASSES[int(np.argmax(p))] == y for _, _, p, y in labelled]))
    log_loss = float(np.mean([-math.log(max(float(p[CLASSES.index(y)]), 1e-15))
                              for _, _, p, y in labelled]))
    query = query_for(stack)
    rows = wait_for(
        query,
        "SELECT count() AS n, avg(correct) AS accuracy, avg(log_loss) AS log_loss "
        "FROM stagelog.labelled_predictions "
        "WHERE model = 'aggregate' AND startsWith(request_id, {p:String})",
        {"p": prefix},
        lambda r: int(r[0]["n"]) >= len(labelled),
    )
    assert int(rows[0]["n"]) == len(labelled)
    assert float(rows[0]["accuracy"]) == pytest.approx(accuracy, abs=1e-9)
    assert float(rows[0]["log_loss"]) == pytest.approx(log_loss, rel=1e-4)  # FP32 probs
    # The per-version view counts these rows too, with every member present. Each member
    # ships its predictions on its own (aggregate's can be in first): wait for theirs.
    wait_for(
        query,
        "SELECT model, count() AS n FROM stagelog.labelled_predictions "
        "WHERE startsWith(request_id, {p:String}) GROUP BY model",
        {"p": prefix},
        lambda r: all(int(x["n"]) >= len(labelled) for x in r) and len(r) == 4,
    )
    models = {r["model"] for r in query("SELECT model FROM stagelog.online_accuracy", None)}
    assert {"mlp", "forest", "logreg", "aggregate"} <= models


def test_psi_rises_during_the_drift_phase(stack):
    query = query_for(stack)
    assert metrics.ensure_baseline(query) >= 0
    calm_start = datetime.now(timezone.utc)
    serve(stack, generate(500, seed=31, drift=0.0), "calm")
    drift_start = datetime.now(timezone.utc)
    serve(stack, generate(500, seed=32, drift=1.0), "drift")
    drift_end = datetime.now(timezone.utc) + timedelta(seconds=1)

    def psi_of(lo, hi):
        rows = wait_for(query, "SELECT count() AS n FROM stagelog.feature_values "
                        "WHERE ts >= toDateTime64({lo:String}, 6, 'UTC') "
                        "AND ts < toDateTime64({hi:String}, 6, 'UTC') AND feature_index = 0",
                        {"lo": metrics.ts_param(lo), "hi": metrics.ts_param(hi)},
                        lambda r: int(r[0]["n"]) >= 500)
        assert int(rows[0]["n"]) == 500
        return {r["feature"]: r["psi"] for r in metrics.feature_psi(query, lo, hi)}

    calm = psi_of(calm_start, drift_start)
    drifted = psi_of(drift_start, drift_end)
    # The generator's drift knob moves ip_risk and amounts (training/generator.py, item 4).
    for feature in ("ip_risk", "log_amount_eur"):
        assert calm[feature] < metrics.PSI_MODERATE, (feature, calm[feature])
        assert drifted[feature] > 2 * calm[feature], (feature, calm[feature], drifted[feature])
    assert drifted["ip_risk"] > metrics.PSI_LARGE
