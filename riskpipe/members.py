"""The three ensemble members, run from exported arrays with the array module ``xp``.

Each member is a ``model.npz`` in its version folder (``model_repository/<member>/<v>/``),
written by ``training.train`` with the ``*_arrays`` functions below and read by
``load_member``. The arrays fully define inference; scikit-learn is needed only to train.

- ``mlp``: standardise, then dense layers with ReLU, softmax output.
- ``logreg``: standardise, then multinomial logistic regression (softmax of ``X @ W.T + b``).
- ``forest``: a random forest padded into ``[trees, nodes]`` arrays; all rows walk all
  trees at once, one level per step, and the leaf class frequencies are averaged.

``predict_proba(X)`` takes ``[rows, N_FEATURES]`` and returns ``[rows, 3]`` as an ``xp``
array (``riskpipe.xp.to_numpy`` brings it back to the host).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from riskpipe.schema import N_CLASSES

ARTIFACT = "model.npz"
KINDS = ("mlp", "forest", "logreg")


def _softmax(xp: ModuleType, logits: Any) -> Any:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class _Standardised:
    """Shared input scaling of the MLP and the logistic regression."""

    def __init__(self, arrays: dict[str, np.ndarray], xp: ModuleType) -> None:
        self.xp = xp
        self.mean = xp.asarray(arrays["scaler_mean"], dtype=xp.float32)
        self.scale = xp.asarray(arrays["scaler_scale"], dtype=xp.float32)
        self.n_features = int(arrays["scaler_mean"].shape[0])

    def _scaled(self, features: Any) -> Any:
        x = self.xp.asarray(features, dtype=self.xp.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features must have shape [rows, {self.n_features}], got {x.shape}")
        return (x - self.mean) / self.scale


class MLPMember(_Standardised):
    """Multi-layer perceptron with ReLU hidden layers and a softmax output."""

    kind = "mlp"

    def __init__(self, arrays: dict[str, np.ndarray], xp: ModuleType) -> None:
        super().__init__(arrays, xp)
        n_layers = int(arrays["n_layers"])
        self.weights = [xp.asarray(arrays[f"W{i}"], dtype=xp.float32) for i in range(n_layers)]
        self.biases = [xp.asarray(arrays[f"b{i}"], dtype=xp.float32) for i in range(n_layers)]

    def predict_proba(self, features: Any) -> Any:
        """Class probabilities ``[rows, 3]``."""
        h = self._scaled(features)
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = self.xp.maximum(h @ weight + bias, 0.0)
        return _softmax(self.xp, h @ self.weights[-1] + self.biases[-1])


class LogRegMember(_Standardised):
    """Multinomial logistic regression."""

    kind = "logreg"

    def __init__(self, arrays: dict[str, np.ndarray], xp: ModuleType) -> None:
        super().__init__(arrays, xp)
        self.coef_t = xp.asarray(arrays["coef"].T, dtype=xp.float32)
        self.intercept = xp.asarray(arrays["intercept"], dtype=xp.float32)

    def predict_proba(self, features: Any) -> Any:
        """Class probabilities ``[rows, 3]``."""
        return _softmax(self.xp, self._scaled(features) @ self.coef_t + self.intercept)


class ForestMember:
    """Random forest; traversal is vectorised over rows and trees."""

    kind = "forest"

    def __init__(self, arrays: dict[str, np.ndarray], xp: ModuleType) -> None:
        self.xp = xp
        self.feature = xp.asarray(arrays["feature"], dtype=xp.int32)
        self.threshold = xp.asarray(arrays["threshold"], dtype=xp.float64)
        self.left = xp.asarray(arrays["left"], dtype=xp.int32)
        self.right = xp.asarray(arrays["right"], dtype=xp.int32)
        self.value = xp.asarray(arrays["value"], dtype=xp.float64)
        self.depth = int(arrays["max_depth"])
        self.n_features = int(arrays["n_features"])
        self.n_trees = int(self.feature.shape[0])

    def predict_proba(self, features: Any) -> Any:
        """Class probabilities ``[rows, 3]`` (mean of the trees' leaf frequencies)."""
        xp = self.xp
        # float32 like scikit-learn's trees, compared in float64 like its thresholds.
        x = xp.asarray(features, dtype=xp.float32).astype(xp.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"features must have shape [rows, {self.n_features}], got {x.shape}")
        rows = x.shape[0]
        trees = xp.arange(self.n_trees)[:, None]
        row_index = xp.arange(rows)[None, :]
        node = xp.zeros((self.n_trees, rows), dtype=xp.int32)
        for _ in range(self.depth):
            left = self.left[trees, node]
            feature = xp.maximum(self.feature[trees, node], 0)
            go_left = x[row_index, feature] <= self.threshold[trees, node]
            child = xp.where(go_left, left, self.right[trees, node])
            node = xp.where(left < 0, node, child)
        return self.value[trees, node].mean(axis=0).astype(xp.float32)


_CLASSES = {"mlp": MLPMember, "logreg": LogRegMember, "forest": ForestMember}


def load_member(path: str | Path, xp: ModuleType = np) -> MLPMember | LogRegMember | ForestMember:
    """Load a member from its ``model.npz`` (or the version folder holding it).

    Raises:
        FileNotFoundError: no artifact at ``path``.
        ValueError: the artifact names an unknown member kind.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ARTIFACT
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    kind = str(arrays.get("kind", ""))
    if kind not in _CLASSES:
        raise ValueError(f"{path}: unknown member kind {kind!r}, expected one of {KINDS}")
    return _CLASSES[kind](arrays, xp)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file (artifact identity for model cards and logs)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- export (used by training.train; takes fitted scikit-learn objects, imports none) ---


def mlp_arrays(clf: Any, mean: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays of a fitted ``MLPClassifier`` (ReLU, 3 classes) with its input scaling."""
    if clf.activation != "relu" or len(clf.classes_) != N_CLASSES:
        raise ValueError("only ReLU MLPs over the three classes can be exported")
    arrays: dict[str, np.ndarray] = {
        "kind": np.array("mlp"),
        "scaler_mean": np.asarray(mean, dtype=np.float32),
        "scaler_scale": np.asarray(scale, dtype=np.float32),
        "n_layers": np.array(len(clf.coefs_)),
    }
    for i, (weight, bias) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        arrays[f"W{i}"] = np.asarray(weight, dtype=np.float32)
        arrays[f"b{i}"] = np.asarray(bias, dtype=np.float32)
    return arrays


def logreg_arrays(clf: Any, mean: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays of a fitted multinomial ``LogisticRegression`` with its input scaling."""
    if clf.coef_.shape[0] != N_CLASSES:
        raise ValueError("only multinomial logistic regressions over three classes export")
    return {
        "kind": np.array("logreg"),
        "scaler_mean": np.asarray(mean, dtype=np.float32),
        "scaler_scale": np.asarray(scale, dtype=np.float32),
        "coef": np.asarray(clf.coef_, dtype=np.float32),
        "intercept": np.asarray(clf.intercept_, dtype=np.float32),
    }


def forest_arrays(forest: Any) -> dict[str, np.ndarray]:
    """Arrays of a fitted ``RandomForestClassifier``, trees padded to the same node count."""
    trees = [estimator.tree_ for estimator in forest.estimators_]
    n_nodes = max(tree.node_count for tree in trees)
    shape = (len(trees), n_nodes)
    feature = np.zeros(shape, dtype=np.int32)
    threshold = np.zeros(shape, dtype=np.float64)
    left = np.full(shape, -1, dtype=np.int32)
    right = np.full(shape, -1, dtype=np.int32)
    value = np.zeros(shape + (N_CLASSES,), dtype=np.float64)
    for t, tree in enumerate(trees):
        n = tree.node_count
        feature[t, :n] = tree.feature
        threshold[t, :n] = tree.threshold
        left[t, :n] = tree.children_left
        right[t, :n] = tree.children_right
        counts = tree.value[:, 0, :]
        totals = counts.sum(axis=1, keepdims=True)
        value[t, :n] = counts / np.where(totals == 0, 1.0, totals)
    return {
        "kind": np.array("forest"),
        "feature": feature,
        "threshold": threshold,
        "left": left,
        "right": right,
        "value": value,
        "max_depth": np.array(max(tree.max_depth for tree in trees)),
        "n_features": np.array(forest.n_features_in_),
    }
