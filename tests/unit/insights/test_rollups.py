"""Hourly rollups (migrations 0072, 0090) outlive the raw rows, in the real embedded engine.

Rows are inserted with timestamps past the raw TTL (tensors 14 days, predictions 90 days), the
rollup job runs (``store.rollups.run_once``, what the collector does every minute), the TTL is
applied (`OPTIMIZE ... FINAL`), and the rollup queries of docs/queries.md still
answer: PSI per feature (equal to the reference computed from the values), prediction and
decision mix, class-probability means and the missing rate per raw field.
"""

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from logging_backend import store
from logging_backend.insights import drift, metrics
from logging_backend.store import rollups
from riskpipe.features import FEATURE_NAMES
from riskpipe.schema import CLASSES
from training.generator import generate
from training.train import featurize

DOC = Path(__file__).resolve().parents[3] / "docs" / "queries.md"
SQL_BLOCK = re.compile(r"^## (\d+)\. (.+?)$.*?^```sql\n(.*?)^```", re.S | re.M)
BASELINE = Path(__file__).resolve().parents[3] / "model_repository/features/1/baseline.json"
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
OLD_TENSORS = NOW - timedelta(days=30)  # past the 14-day TTL of stage_tensors
OLD_PREDICTIONS = NOW - timedelta(days=120)  # past the 90-day TTL of predictions
TENSOR_COLS = ["ts", "request_id", "stage", "model_version", "direction", "name", "dtype",
               "shape", "values_f64", "values_str"]
PRED_COLS = ["ts", "request_id", "row", "stage", "model", "model_version", "class_probs",
             "probs", "predicted_class", "decision"]


def doc_query(title_word: str) -> str:
    for _, title, sql in SQL_BLOCK.findall(DOC.read_text()):
        if title_word in title:
            return sql
    raise AssertionError(f"no query titled with {title_word!r} in {DOC}")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path_factory.mktemp('rollups') / 'ch'}")
    store.migrate(c)
    metrics.ensure_baseline(metrics.client_query(c))
    yield c
    store.close_all()


@pytest.fixture(scope="module")
def aged(client):
    """300 calm events' features and processed rows, 30 days old; 50 predictions, 120 days."""
    # the rollup job must see them before the TTL drops them (in service it runs every minute)
    for table in ("stage_tensors", "predictions"):
        client.command(f"SYSTEM STOP TTL MERGES stagelog.{table}")
    events = generate(300, seed=107, dirty=0.1)
    features, _ = featurize(events)
    tensors = []
    for start in range(0, 300, 25):
        chunk = features[start : start + 25].astype(np.float64)
        rid = f"old-{start}"
        tensors.append([OLD_TENSORS, rid, "features", "1", "output", "FEATURES", "float32",
                        list(chunk.shape), chunk.ravel().tolist(), []])
        rows = [{"imputed": ["country"] if i % 5 == 0 else [], "unknown_category": [],
                 "clipped": [], "duplicate": i % 10 == 0} for i in range(25)]
        tensors.append([OLD_TENSORS, rid, "preprocess", "1", "output", "PROCESSED", "BYTES",
                        [25, 1], [], [json.dumps(r) for r in rows]])
    # a replay of the first request: its arrows are logged but stay out of the rollups
    tensors.append([OLD_TENSORS, "replay-1", "features", "1", "output", "FEATURES", "float32",
                    [1, len(FEATURE_NAMES)], [1e6] * len(FEATURE_NAMES), []])
    client.insert("stagelog.stage_tensors", tensors, column_names=TENSOR_COLS)
    preds = []
    for i in range(50):
        probs = [0.9, 0.05, 0.05] if i % 5 else [0.2, 0.7, 0.1]
        decision = "approve" if i % 5 else "decline"
        preds.append([OLD_PREDICTIONS, f"old-{i}", 0, "aggregate", "aggregate", "1",
                      dict(zip(CLASSES, probs, strict=True)), probs,
                      CLASSES[int(np.argmax(probs))], decision])
    preds.append([OLD_PREDICTIONS, "replay-1", 0, "aggregate", "aggregate", "1",
                  dict(zip(CLASSES, [0, 0, 1.0], strict=True)), [0, 0, 1.0],
                  "account_takeover", "decline"])
    client.insert("stagelog.predictions", preds, column_names=PRED_COLS)
    assert rollups.run_once(client) == 3  # one range per rollup (one partition each)
    for table in ("stage_tensors", "predictions"):
        client.command(f"SYSTEM START TTL MERGES stagelog.{table}")
        client.command(f"OPTIMIZE TABLE stagelog.{table} FINAL")
    return features


def rows(client, sql, params=None):
    return metrics.client_query(client)(sql, params)


def test_raw_rows_are_gone_after_their_ttl(client, aged):
    assert rows(client, "SELECT count() AS n FROM stagelog.stage_tensors")[0]["n"] == 0
    assert rows(client, "SELECT count() AS n FROM stagelog.predictions")[0]["n"] == 0


def test_psi_over_months_from_the_rollup_matches_the_reference(client, aged):
    found = rows(client, doc_query("PSI over months"), {
        "h_from": (OLD_TENSORS - timedelta(days=60)).strftime("%Y-%m-%d %H:%M:%S"),
        "h_to": NOW.strftime("%Y-%m-%d %H:%M:%S")})
    baselines = {b.feature: b for b in drift.load_file(BASELINE, FEATURE_NAMES)}
    by_feature = {r["feature"]: r for r in found}
    assert set(by_feature) == set(FEATURE_NAMES)
    for index, name in enumerate(FEATURE_NAMES):
        b = baselines[name]
        want = drift.psi(b.expected, drift.fractions(b.edges, aged[:, index].astype(np.float64)))
        assert int(by_feature[name]["rows"]) == 300  # the replay's row is not counted
        assert float(by_feature[name]["psi"]) == pytest.approx(want, abs=5e-5), name
    assert max(float(r["psi"]) for r in found) < 0.25  # calm traffic is calm


def test_prediction_and_decision_mix_over_months(client, aged):
    found = rows(client, doc_query("Prediction and decision mix over months"))
    assert len(found) == 2
    mix = {r["decision"]: r for r in found}
    assert int(mix["approve"]["rows"]) == 40 and int(mix["decline"]["rows"]) == 10
    assert float(mix["decline"]["mean_p_card_fraud"]) == pytest.approx(0.7, abs=1e-6)
    assert float(mix["approve"]["share"]) == pytest.approx(0.8)


def test_missing_rate_per_raw_field_from_the_rollup(client, aged):
    found = rows(client, doc_query("Missing data over months"))
    country = next(r for r in found if r["field"] == "country")
    assert int(country["rows"]) == 300 and int(country["imputed"]) == 60
    assert float(country["imputed_rate"]) == pytest.approx(0.2)


def test_retention_is_in_logging_policy(client):
    found = rows(client, "SELECT model_name, reason FROM stagelog.logging_policy "
                         "WHERE policy = 'retention'")
    reasons = {r["model_name"]: r["reason"] for r in found}
    assert "14 days" in reasons["stage_tensors"] and "400 days" in reasons["stage_tensors"]
    assert "90 days" in reasons["predictions"]


STORAGE_DOC = Path(__file__).resolve().parents[3] / "docs" / "storage.md"


def test_the_storage_doc_table_says_what_logging_policy_says(client):
    section = STORAGE_DOC.read_text().split("## Retention", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| `")]
    found = rows(client, "SELECT model_name, reason FROM stagelog.logging_policy "
                         "WHERE policy = 'retention'")
    assert len(found) >= 10
    for row in found:
        line = next((x for x in lines if f"`{row['model_name']}`" in x.split("|")[1]), None)
        assert line is not None, f"{row['model_name']} is not in the retention table"
        kept = line.rsplit("|", 2)[-2].strip()
        first = re.search(r"kept (\d+ days|without limit)", row["reason"]).group(1)
        assert kept == ("no limit" if first == "without limit" else first), (row, line)
