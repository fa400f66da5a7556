"""Train the three members on generated data and export them into ``model_repository/``.

``python -m training.train`` generates a training set and a holdout set with fixed seeds,
runs them through the serving code (``riskpipe.preprocess`` then ``riskpipe.features``,
events in time order, fresh state per set), fits scikit-learn models and writes, per member
version, ``model_repository/<member>/<version>/model.npz`` and ``model_card.json``. It also
writes the ensemble's card (``model_repository/pipeline/model_card.json``) and the training
distribution of every feature (``model_repository/features/1/baseline.json``) for drift
checks. It prints a table of holdout metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, recall_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from riskpipe import aggregate, members
from riskpipe.features import BINARY_FEATURES, FEATURE_NAMES, FeatureBuilder
from riskpipe.preprocess import Preprocessor
from riskpipe.schema import CLASSES
from riskpipe.xp import to_numpy
from training.generator import DEFAULT_START, LabelledEvent, generate, to_jsonl

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPOSITORY = REPO_ROOT / "model_repository"

TRAIN_DATA = {"n": 30_000, "seed": 101, "drift": 0.0, "dirty": 0.02}
HOLDOUT_DATA = {"n": 10_000, "seed": 202, "drift": 0.0, "dirty": 0.02}

# (member, version) -> scikit-learn estimator and its parameters.
MEMBER_PARAMS: dict[tuple[str, int], dict[str, Any]] = {
    ("mlp", 1): {"hidden_layer_sizes": (32,), "alpha": 1e-3, "max_iter": 200},
    ("mlp", 2): {
        "hidden_layer_sizes": (64,),
        "alpha": 1e-3,
        "max_iter": 300,
        "early_stopping": True,
    },
    ("forest", 1): {"n_estimators": 40, "max_depth": 8, "min_samples_leaf": 5},
    ("logreg", 1): {"C": 1.0, "max_iter": 2000},
}
# The member versions the ensemble `pipeline` uses (its config names the same versions).
PIPELINE_MEMBERS: dict[str, int] = {"mlp": 2, "forest": 1, "logreg": 1}
SEED = 0
BASELINE_BINS = 10


def featurize(events: list[LabelledEvent]) -> tuple[np.ndarray, np.ndarray]:
    """Run events through the serving preprocess + features code; return ``(X, y)``.

    Events go in time order through fresh stage state, as a stream would reach the server.
    """
    # A fixed "time of arrival" for events without a timestamp keeps training reproducible.
    preprocessor = Preprocessor(clock=lambda: DEFAULT_START)
    rows = preprocessor.process([json.dumps(e.event).encode("utf-8") for e in events])
    features, _ = FeatureBuilder().build(rows)
    labels = np.array([CLASSES.index(e.label) for e in events], dtype=np.int64)
    return features, labels


def dataset_sha256(events: list[LabelledEvent]) -> str:
    """sha256 of the events as JSON lines followed by their labels, one per line."""
    digest = hashlib.sha256(to_jsonl(events).encode("utf-8"))
    digest.update("".join(e.label + "\n" for e in events).encode("utf-8"))
    return digest.hexdigest()


def metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, log-loss and per-class recall of ``probs`` against ``y``."""
    predicted = probs.argmax(axis=1)
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1.0)  # log-loss of a hard 0 is infinite
    clipped /= clipped.sum(axis=1, keepdims=True)
    labels = list(range(len(CLASSES)))
    recall = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y, predicted)), 4),
        "macro_f1": round(
            float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)), 4
        ),
        "log_loss": round(float(log_loss(y, clipped, labels=labels)), 4),
        "recall": {name: round(float(r), 4) for name, r in zip(CLASSES, recall, strict=True)},
    }


def feature_baseline(features: np.ndarray) -> dict[str, Any]:
    """Per-feature training distribution: cut points (deciles) and bin proportions."""
    out: dict[str, Any] = {}
    for i, name in enumerate(FEATURE_NAMES):
        column = features[:, i].astype(np.float64)
        if name in BINARY_FEATURES:
            cuts = np.array([0.5])
        else:
            quantiles = np.quantile(column, np.linspace(0, 1, BASELINE_BINS + 1)[1:-1])
            cuts = np.unique(np.round(quantiles, 6))
        counts = np.bincount(np.searchsorted(cuts, column, side="right"), minlength=len(cuts) + 1)
        out[name] = {
            "cuts": [float(c) for c in cuts],
            "proportions": [round(float(c) / len(column), 6) for c in counts],
        }
    return out


def _estimator(member: str, params: dict[str, Any]) -> Any:
    if member == "mlp":
        return MLPClassifier(random_state=SEED, **params)
    if member == "forest":
        return RandomForestClassifier(random_state=SEED, n_jobs=2, **params)
    return LogisticRegression(**params)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def train(repository: Path = DEFAULT_REPOSITORY) -> dict[str, dict[str, Any]]:
    """Train, export and evaluate every member version; return holdout metrics by name."""
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    train_events, holdout_events = generate(**TRAIN_DATA), generate(**HOLDOUT_DATA)
    x_train, y_train = featurize(train_events)
    x_holdout, y_holdout = featurize(holdout_events)
    data_card = {
        "generator": "training.generator",
        "train": {**TRAIN_DATA, "sha256": dataset_sha256(train_events)},
        "holdout": {**HOLDOUT_DATA, "sha256": dataset_sha256(holdout_events)},
        "train_class_counts": {
            name: int(c) for name, c in zip(CLASSES, np.bincount(y_train, minlength=3), strict=True)
        },
    }
    priors = np.bincount(y_train, minlength=len(CLASSES)) / len(y_train)
    majority = np.tile(priors, (len(y_holdout), 1))  # arg-max is the majority class
    baseline = {"rule": "always the training majority class, training priors as probabilities"}
    baseline.update(metrics(y_holdout, majority))

    scaler = StandardScaler().fit(x_train.astype(np.float64))
    x_train_scaled = scaler.transform(x_train.astype(np.float64))
    results: dict[str, dict[str, Any]] = {"majority_baseline": baseline}
    holdout_probs: dict[tuple[str, int], np.ndarray] = {}
    for (member, version), params in MEMBER_PARAMS.items():
        started = time.perf_counter()
        model = _estimator(member, params)
        if member == "forest":
            model.fit(x_train, y_train)
            arrays = members.forest_arrays(model)
        else:
            model.fit(x_train_scaled, y_train)
            export = members.mlp_arrays if member == "mlp" else members.logreg_arrays
            arrays = export(model, scaler.mean_, scaler.scale_)
        fit_s = time.perf_counter() - started
        folder = repository / member / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / members.ARTIFACT, **arrays)
        probs = to_numpy(members.load_member(folder).predict_proba(x_holdout))
        holdout_probs[(member, version)] = probs
        results[f"{member} v{version}"] = metrics(y_holdout, probs)
        _write_json(
            folder / "model_card.json",
            {
                "model": member,
                "version": version,
                "created_at": created_at,
                "artifact": members.ARTIFACT,
                "artifact_sha256": members.file_sha256(folder / members.ARTIFACT),
                "estimator": type(model).__name__,
                "params": {**params, **({"random_state": SEED} if member != "logreg" else {})},
                "fit_seconds": round(fit_s, 2),
                "input_scaling": "standardised inside the member" if member != "forest" else None,
                "feature_names": list(FEATURE_NAMES),
                "classes": list(CLASSES),
                "training_data": data_card,
                "holdout_metrics": results[f"{member} v{version}"],
                "majority_baseline": baseline,
            },
        )

    ensemble_probs = aggregate.mean_probs(
        [holdout_probs[(m, v)] for m, v in PIPELINE_MEMBERS.items()]
    )
    results["ensemble (pipeline)"] = metrics(y_holdout, ensemble_probs)
    decisions = aggregate.decide(ensemble_probs)
    _write_json(
        repository / "pipeline" / "model_card.json",
        {
            "model": "pipeline",
            "created_at": created_at,
            "members": {m: v for m, v in PIPELINE_MEMBERS.items()},
            "combination": "arithmetic mean of member probabilities",
            "decision_thresholds": {
                "review_at": aggregate.REVIEW_AT,
                "decline_at": aggregate.DECLINE_AT,
                "on": "1 - p(legit)",
            },
            "holdout_decision_mix": {
                d: decisions.count(d) for d in ("approve", "review", "decline")
            },
            "training_data": data_card,
            "holdout_metrics": results["ensemble (pipeline)"],
            "member_holdout_metrics": {
                k: v for k, v in results.items() if k != "majority_baseline"
            },
            "majority_baseline": baseline,
        },
    )
    _write_json(
        repository / "features" / "1" / "baseline.json",
        {
            "description": "training distribution per feature; bin = searchsorted(cuts, x, "
            "side='right'), so len(proportions) == len(cuts) + 1",
            "created_at": created_at,
            "training_data": data_card["train"],
            "features": feature_baseline(x_train),
        },
    )
    return results


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Holdout metrics as a Markdown table."""
    header = (
        "| model | accuracy | macro-F1 | log-loss | recall legit | recall card_fraud "
        "| recall account_takeover |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        r = m["recall"]
        lines.append(
            f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['log_loss']:.4f} | "
            f"{r['legit']:.4f} | {r['card_fraud']:.4f} | {r['account_takeover']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: train, export, print the holdout metrics table."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    args = parser.parse_args(argv)
    results = train(args.repository)
    print(f"holdout: {HOLDOUT_DATA}, train: {TRAIN_DATA}")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
