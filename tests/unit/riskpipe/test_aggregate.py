import numpy as np
import pytest

from riskpipe import aggregate
from riskpipe.schema import CLASSES, DECISIONS


def test_mean_is_arithmetic_per_row_and_class():
    a = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]], dtype=np.float32)
    b = np.array([[0.6, 0.3, 0.1], [0.4, 0.5, 0.1]], dtype=np.float32)
    c = np.array([[0.3, 0.1, 0.6], [0.0, 0.0, 1.0]], dtype=np.float32)
    mean = aggregate.mean_probs([a, b, c])
    np.testing.assert_allclose(mean, (a + b + c) / 3, rtol=1e-6)
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(aggregate.predicted_class(mean), [0, 1])


@pytest.mark.parametrize(
    "bad",
    [[], [np.ones((2, 3)), np.ones((3, 3))], [np.ones((2, 2))], [np.ones(3)]],
    ids=["none", "row-mismatch", "two-classes", "one-dim"],
)
def test_mean_refuses_bad_shapes(bad):
    with pytest.raises(ValueError):
        aggregate.mean_probs(bad)


@pytest.mark.parametrize(
    ("p_legit", "decision"),
    [
        (1.0, "approve"),
        (0.71, "approve"),
        (0.70, "review"),  # risk 0.30: the review threshold is inclusive
        (0.50, "review"),
        (0.31, "review"),
        (0.30, "decline"),  # risk 0.70: the decline threshold is inclusive
        (0.0, "decline"),
    ],
)
def test_decision_thresholds_on_fraud_risk(p_legit, decision):
    rest = (1.0 - p_legit) / 2
    probs = np.array([[p_legit, rest, rest]], dtype=np.float64)
    assert aggregate.decide(probs) == [decision]


def test_risk_counts_both_fraud_classes():
    probs = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
    assert aggregate.decide(probs) == ["review"] * 3


def test_custom_thresholds_and_their_validation():
    probs = np.array([[0.85, 0.1, 0.05]])
    assert aggregate.decide(probs, review_at=0.1, decline_at=0.2) == ["review"]
    assert aggregate.decide(probs, review_at=0.05, decline_at=0.1) == ["decline"]
    with pytest.raises(ValueError):
        aggregate.decide(probs, review_at=0.8, decline_at=0.5)


def test_classes_and_decisions_are_the_documented_ones():
    assert CLASSES == ("legit", "card_fraud", "account_takeover")
    assert DECISIONS == ("approve", "review", "decline")
