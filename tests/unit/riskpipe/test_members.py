import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from riskpipe import members
from riskpipe.features import N_FEATURES
from training.generator import generate
from training.train import featurize

REPO = Path(__file__).resolve().parents[3]
MEMBER_VERSIONS = [("mlp", 1), ("mlp", 2), ("forest", 1), ("logreg", 1)]


@pytest.fixture(scope="module")
def data():
    x_train, y_train = featurize(generate(1500, seed=5, dirty=0.05))
    x_test, _ = featurize(generate(400, seed=6, dirty=0.05))
    scaler = StandardScaler().fit(x_train.astype(np.float64))
    return x_train, y_train, x_test, scaler


def _roundtrip(tmp_path: Path, arrays: dict) -> members.MLPMember:
    np.savez_compressed(tmp_path / members.ARTIFACT, **arrays)
    return members.load_member(tmp_path)


def test_mlp_arrays_reproduce_sklearn_predict_proba(tmp_path, data):
    x_train, y_train, x_test, scaler = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=60, random_state=0)
        clf.fit(scaler.transform(x_train), y_train)
    member = _roundtrip(tmp_path, members.mlp_arrays(clf, scaler.mean_, scaler.scale_))
    expected = clf.predict_proba(scaler.transform(x_test))
    np.testing.assert_allclose(member.predict_proba(x_test), expected, atol=2e-5)


def test_logreg_arrays_reproduce_sklearn_predict_proba(tmp_path, data):
    x_train, y_train, x_test, scaler = data
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x_train), y_train)
    member = _roundtrip(tmp_path, members.logreg_arrays(clf, scaler.mean_, scaler.scale_))
    expected = clf.predict_proba(scaler.transform(x_test))
    np.testing.assert_allclose(member.predict_proba(x_test), expected, atol=2e-5)


def test_forest_traversal_reproduces_sklearn_predict_proba(tmp_path, data):
    x_train, y_train, x_test, _ = data
    forest = RandomForestClassifier(n_estimators=7, max_depth=6, random_state=0)
    forest.fit(x_train, y_train)
    member = _roundtrip(tmp_path, members.forest_arrays(forest))
    expected = forest.predict_proba(x_test)
    np.testing.assert_allclose(member.predict_proba(x_test), expected, atol=1e-6)


def test_forest_with_trees_of_different_depths(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    forest = RandomForestClassifier(n_estimators=5, max_depth=None, random_state=1).fit(x, y)
    member = _roundtrip(tmp_path, members.forest_arrays(forest))
    np.testing.assert_allclose(member.predict_proba(x), forest.predict_proba(x), atol=1e-6)


@pytest.mark.parametrize(("name", "version"), MEMBER_VERSIONS)
def test_committed_artifacts_load_and_give_probability_vectors(name, version):
    folder = REPO / "model_repository" / name / str(version)
    member = members.load_member(folder)
    assert member.kind == name
    x, _ = featurize(generate(50, seed=3))
    probs = member.predict_proba(x)
    assert probs.shape == (50, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    card = json.loads((folder / "model_card.json").read_text())
    assert card["artifact_sha256"] == members.file_sha256(folder / members.ARTIFACT)


def test_wrong_feature_width_is_refused():
    member = members.load_member(REPO / "model_repository" / "logreg" / "1")
    with pytest.raises(ValueError, match="shape"):
        member.predict_proba(np.zeros((2, N_FEATURES - 1), dtype=np.float32))


def test_unknown_kind_is_refused(tmp_path):
    np.savez(tmp_path / members.ARTIFACT, kind=np.array("svm"))
    with pytest.raises(ValueError, match="unknown member kind 'svm'"):
        members.load_member(tmp_path)
