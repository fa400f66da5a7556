import json
import re
from pathlib import Path

import numpy as np
import pytest

from riskpipe.features import FEATURE_NAMES
from training import train

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / "model_repository"
VERSIONS = list(train.MEMBER_PARAMS)


@pytest.mark.parametrize(("member", "version"), VERSIONS)
def test_model_card_is_complete_and_beats_the_majority_baseline(member, version):
    card = json.loads((MODELS / member / str(version) / "model_card.json").read_text())
    assert card["model"] == member and card["version"] == version
    assert card["feature_names"] == list(FEATURE_NAMES)
    assert re.fullmatch(r"[0-9a-f]{64}", card["training_data"]["train"]["sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", card["created_at"])
    m, base = card["holdout_metrics"], card["majority_baseline"]
    assert set(m["recall"]) == {"legit", "card_fraud", "account_takeover"}
    assert m["macro_f1"] > base["macro_f1"] + 0.3
    assert m["log_loss"] < base["log_loss"] / 2
    assert m["accuracy"] > base["accuracy"]


def test_ensemble_card_names_the_versions_the_pipeline_config_uses():
    card = json.loads((MODELS / "pipeline" / "model_card.json").read_text())
    config = (MODELS / "pipeline" / "config.pbtxt").read_text()
    steps = dict(re.findall(r'model_name: "(\w+)"\s+model_version: (\d+)', config))
    for member, version in card["members"].items():
        assert int(steps[member]) == version
    assert card["holdout_metrics"]["macro_f1"] > card["majority_baseline"]["macro_f1"] + 0.3


def test_mlp_has_two_versions_loaded_by_an_explicit_policy():
    config = (MODELS / "mlp" / "config.pbtxt").read_text()
    assert re.search(r"specific: \{ versions: \[ 1, 2 \] \}", config)
    assert (MODELS / "mlp" / "1" / "model.npz").exists()
    assert (MODELS / "mlp" / "2" / "model.npz").exists()


def test_feature_baseline_covers_every_feature_with_proportions_summing_to_one():
    doc = json.loads((MODELS / "features" / "1" / "baseline.json").read_text())
    assert list(doc["features"]) == list(FEATURE_NAMES)
    for name, bins in doc["features"].items():
        assert len(bins["proportions"]) == len(bins["cuts"]) + 1, name
        assert sum(bins["proportions"]) == pytest.approx(1.0, abs=1e-4), name
        assert bins["cuts"] == sorted(bins["cuts"]), name


def test_metrics_of_perfect_and_uniform_predictions():
    y = np.array([0, 1, 2, 0])
    perfect = train.metrics(y, np.eye(3)[y])
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0
    assert perfect["recall"] == {"legit": 1.0, "card_fraud": 1.0, "account_takeover": 1.0}
    uniform = train.metrics(y, np.full((4, 3), 1 / 3))
    assert uniform["log_loss"] == pytest.approx(np.log(3), abs=1e-4)


def test_feature_baseline_bins_follow_searchsorted_right():
    x = np.zeros((10, len(FEATURE_NAMES)), dtype=np.float32)
    x[:, 0] = np.arange(10)
    x[:5, FEATURE_NAMES.index("channel=pos")] = 1.0
    base = train.feature_baseline(x)
    assert base["channel=pos"] == {"cuts": [0.5], "proportions": [0.5, 0.5]}
    assert base["log_amount_eur"]["proportions"] == [0.1] * 10
