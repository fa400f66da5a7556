"""Feature drift against the training baseline: the population stability index (PSI).

The baseline of a feature is a set of bins made at training time: inner edges
``e_1 < … < e_{k-1}`` (bin ``i`` holds ``e_i <= x < e_{i+1}``, with open ends) and the
fraction of training rows in each bin. For served rows the same bins are counted and

    PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)

over the bins, with both fractions floored at ``EPSILON`` so that an empty bin does not make
the index infinite. Rules of thumb: below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 a
large shift. The same formula runs in SQL (migration 0013, view ``feature_psi``); this module
is the reference that unit tests hold the SQL to, and builds baselines from training data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from logging_backend.errors import BaselineError

EPSILON = 1e-4
DEFAULT_BINS = 10


@dataclass(frozen=True)
class FeatureBaseline:
    """The training distribution of one feature as bins."""

    feature: str
    index: int
    edges: tuple[float, ...]
    expected: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.expected) != len(self.edges) + 1:
            raise BaselineError(
                f"feature {self.feature!r}: {len(self.edges)} edges need "
                f"{len(self.edges) + 1} expected fractions, got {len(self.expected)}"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise BaselineError(f"feature {self.feature!r}: edges must increase strictly")
        total = sum(self.expected)
        if any(p < 0 for p in self.expected) or not math.isclose(total, 1.0, abs_tol=1e-3):
            raise BaselineError(
                f"feature {self.feature!r}: expected fractions must be >= 0 and sum to 1, "
                f"sum is {total:.6f}"
            )


def bin_index(edges: Sequence[float], value: float) -> int:
    """Return the bin of ``value``: the number of edges at or below it (as in the SQL)."""
    return int(sum(1 for edge in edges if edge <= value))


def fractions(edges: Sequence[float], values: Iterable[float]) -> list[float]:
    """Return the fraction of ``values`` in each of the ``len(edges) + 1`` bins."""
    arr = np.asarray(list(values), dtype=np.float64)
    counts = np.zeros(len(edges) + 1, dtype=np.float64)
    if arr.size == 0:
        return counts.tolist()
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="right")
    np.add.at(counts, idx, 1.0)
    return (counts / arr.size).tolist()


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index between two binned distributions of equal length."""
    if len(expected) != len(actual):
        raise BaselineError(f"bins differ: {len(expected)} expected vs {len(actual)} actual")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_f = max(float(e), epsilon)
        a_f = max(float(a), epsilon)
        total += (a_f - e_f) * math.log(a_f / e_f)
    return total


def feature_baseline(
    feature: str, index: int, values: Sequence[float], bins: int = DEFAULT_BINS
) -> FeatureBaseline:
    """Make the baseline of one feature: quantile edges and the training fraction per bin.

    Repeated quantiles (a feature with few distinct values, such as a one-hot column)
    collapse into one edge, so a binary feature gets two bins.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise BaselineError(f"feature {feature!r}: no finite training values")
    # "lower" keeps edges on observed values, so a one-hot column gets exactly one edge.
    qs = np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
    edges = sorted({float(q) for q in qs})
    # An edge equal to the minimum would leave the first bin empty by construction.
    edges = [e for e in edges if e > float(arr.min())]
    return FeatureBaseline(feature, index, tuple(edges), tuple(fractions(edges, arr)))


def make_baseline(
    names: Sequence[str], matrix: np.ndarray, bins: int = DEFAULT_BINS
) -> list[FeatureBaseline]:
    """Make baselines for every column of a training feature matrix ``[rows, features]``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise BaselineError(
            f"feature matrix shape {matrix.shape} does not match {len(names)} feature names"
        )
    return [feature_baseline(n, i, matrix[:, i], bins) for i, n in enumerate(names)]


def to_json(baselines: Sequence[FeatureBaseline], **meta: object) -> str:
    """Serialise baselines in the ``baseline.json`` format that ``training.train`` writes."""
    doc = {
        **meta,
        "features": {
            b.feature: {"cuts": list(b.edges), "proportions": list(b.expected)}
            for b in sorted(baselines, key=lambda b: b.index)
        },
    }
    return json.dumps(doc, indent=1)


def from_mapping(
    doc: Mapping[str, object], order: Sequence[str] | None = None
) -> list[FeatureBaseline]:
    """Read baselines from a parsed ``baseline.json``.

    The format (written by ``training.train`` into ``model_repository/features/<v>/``):
    ``{"features": {name: {"cuts": [inner edges], "proportions": [training fraction per
    bin]}}, ...}`` with bin = ``searchsorted(cuts, x, side="right")``; other top-level keys
    (description, created_at, training_data) are kept by the caller, not used here.

    Args:
        doc: the parsed document.
        order: the feature layout (``riskpipe.features.FEATURE_NAMES``); a feature's index is
            its position there. Without it, the file's order is the layout.

    Raises:
        BaselineError: the shape is wrong, or a feature of ``order`` is missing.
    """
    features = doc.get("features")
    if not isinstance(features, Mapping):
        raise BaselineError("baseline needs a 'features' object {name: {cuts, proportions}}")
    names = list(order) if order is not None else list(features)
    unknown = sorted(set(features) - set(names))
    if unknown:
        raise BaselineError(f"baseline has features not in the layout: {', '.join(unknown)}")
    out = []
    for i, name in enumerate(names):
        spec = features.get(name)
        if not isinstance(spec, Mapping) or "cuts" not in spec or "proportions" not in spec:
            raise BaselineError(f"baseline has no cuts/proportions for feature {name!r}")
        out.append(
            FeatureBaseline(
                str(name),
                i,
                tuple(float(x) for x in spec["cuts"]),
                tuple(float(x) for x in spec["proportions"]),
            )
        )
    return out


def load_file(path: str | Path, order: Sequence[str] | None = None) -> list[FeatureBaseline]:
    """Read a ``baseline.json`` file (see ``from_mapping``)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise BaselineError(f"baseline file {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline file {p} is not JSON: {exc}") from None
    return from_mapping(doc, order)
