"""PSI per feature of generated traffic against the training baseline, offline.

The served path computes PSI in SQL (view ``stagelog.feature_psi``); this command runs the
same serving code (``riskpipe.preprocess`` then ``riskpipe.features``, fresh state) over
generated events and applies the same formula to ``model_repository/features/1/baseline.json``
(bin = number of cuts at or below the value; both fractions floored at 1e-4). It answers
"is the calm phase calm?" without a running stack::

    python -m training.calm_psi --n 300 --seed 107            # the demo's calm phase
    python -m training.calm_psi --n 300 --seed 207 --drift 1  # its drift phase
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from riskpipe.features import FEATURE_NAMES
from training.generator import generate
from training.train import DEFAULT_REPOSITORY, featurize

EPSILON = 1e-4


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two binned distributions (fractions floored at 1e-4)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def feature_psi(features: np.ndarray, baseline: dict[str, Any]) -> dict[str, float]:
    """PSI of every column of ``features`` against ``baseline["features"]``."""
    out: dict[str, float] = {}
    for i, name in enumerate(FEATURE_NAMES):
        spec = baseline["features"][name]
        cuts = np.asarray(spec["cuts"], dtype=np.float64)
        column = features[:, i].astype(np.float64)
        counts = np.bincount(np.searchsorted(cuts, column, side="right"), minlength=len(cuts) + 1)
        out[name] = psi(list(spec["proportions"]), (counts / max(len(column), 1)).tolist())
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: print PSI per feature, largest first."""
    parser = argparse.ArgumentParser(prog="python -m training.calm_psi", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="events (the demo phase: 300)")
    parser.add_argument("--seed", type=int, default=107, help="seed (demo calm phase: 107)")
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=8, help="features to print")
    parser.add_argument(
        "--baseline", type=Path, default=DEFAULT_REPOSITORY / "features" / "1" / "baseline.json"
    )
    args = parser.parse_args(argv)
    baseline = json.loads(args.baseline.read_text())
    features, _ = featurize(generate(args.n, args.seed, drift=args.drift))
    scores = feature_psi(features, baseline)
    print(f"PSI vs {args.baseline.name} of {args.n} events (seed {args.seed}, drift {args.drift})")
    for name, value in sorted(scores.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{name:32s} {value:8.3f}")
    print(f"max {max(scores.values()):.3f}; features above 0.25: "
          f"{sum(v > 0.25 for v in scores.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
