"""Stage `aggregate`: the members' probabilities in, one probability vector and a decision out.

The ensemble probability is the arithmetic mean of the members' probability vectors; the
predicted class is its arg-max. The decision looks at the fraud risk, the probability that
the event is *not* legitimate (``1 - p(legit)``):

- ``decline`` when ``risk >= DECLINE_AT`` (0.70),
- ``review`` when ``REVIEW_AT`` (0.30) ``<= risk < DECLINE_AT``,
- ``approve`` otherwise.

Both thresholds can be changed in the `aggregate` model's config (``review_at`` and
``decline_at`` in its ``parameters`` block).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from riskpipe.schema import CLASSES, N_CLASSES

REVIEW_AT = 0.30
DECLINE_AT = 0.70


def mean_probs(member_probs: Sequence[np.ndarray]) -> np.ndarray:
    """Arithmetic mean of the members' ``[rows, 3]`` probabilities (float32).

    Raises:
        ValueError: no members, or shapes that differ or are not ``[rows, 3]``.
    """
    if not member_probs:
        raise ValueError("need at least one member's probabilities")
    arrays = [np.asarray(p, dtype=np.float32) for p in member_probs]
    shape = arrays[0].shape
    for array in arrays:
        if array.ndim != 2 or array.shape[1] != N_CLASSES or array.shape != shape:
            raise ValueError(
                f"member probabilities must all have shape [rows, {N_CLASSES}], "
                f"got {[a.shape for a in arrays]}"
            )
    return np.mean(np.stack(arrays), axis=0, dtype=np.float32)


def predicted_class(probs: np.ndarray) -> np.ndarray:
    """Index of the most probable class per row."""
    return np.argmax(probs, axis=1)


def decide(
    probs: np.ndarray, review_at: float = REVIEW_AT, decline_at: float = DECLINE_AT
) -> list[str]:
    """Decision per row from the fraud risk ``1 - p(legit)``.

    Raises:
        ValueError: thresholds not in ``0 <= review_at <= decline_at <= 1``.
    """
    if not 0.0 <= review_at <= decline_at <= 1.0:
        raise ValueError(f"need 0 <= review_at <= decline_at <= 1, got {review_at}, {decline_at}")
    risk = 1.0 - np.asarray(probs, dtype=np.float64)[:, CLASSES.index("legit")]
    return [
        "decline" if r >= decline_at else "review" if r >= review_at else "approve" for r in risk
    ]
