import math

import numpy as np
import pytest

from logging_backend.insights import drift


def test_psi_is_zero_for_identical_distributions():
    assert drift.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_matches_a_hand_computed_value():
    expected = [0.5, 0.5]
    actual = [0.8, 0.2]
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert drift.psi(expected, actual) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(0.4158883, abs=1e-6)


def test_empty_bins_are_floored_not_infinite():
    value = drift.psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5])
    assert math.isfinite(value) and value > 1.0


def test_bins_follow_the_sql_rule_edges_at_or_below():
    edges = [1.0, 2.0]
    assert [drift.bin_index(edges, x) for x in (0.5, 1.0, 1.5, 2.0, 9.0)] == [0, 1, 1, 2, 2]
    assert drift.fractions(edges, [0.5, 1.0, 1.5, 2.0]) == [0.25, 0.5, 0.25]


def test_psi_rises_with_the_size_of_a_shift():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 20_000)
    base = drift.feature_baseline("x", 0, train)
    assert len(base.edges) == 9
    assert sum(base.expected) == pytest.approx(1.0)
    values = [
        drift.psi(base.expected, drift.fractions(base.edges, rng.normal(shift, 1, 5_000)))
        for shift in (0.0, 0.3, 1.0)
    ]
    assert values[0] < 0.01 < 0.1 < values[2]
    assert values[0] < values[1] < values[2]


def test_binary_feature_gets_two_bins():
    base = drift.feature_baseline("is_online", 3, [0] * 70 + [1] * 30)
    assert base.edges == (1.0,)
    assert base.expected == pytest.approx((0.7, 0.3))


def test_baseline_round_trips_through_json(tmp_path):
    rng = np.random.default_rng(1)
    bases = drift.make_baseline(["a", "b"], rng.normal(size=(1000, 2)))
    path = tmp_path / "baseline.json"
    path.write_text(drift.to_json(bases, created_at="2026-01-01"))
    assert drift.load_file(path) == bases


def test_bad_baselines_are_rejected_with_the_feature_name(tmp_path):
    with pytest.raises(drift.BaselineError, match="'a'.*sum to 1"):
        drift.FeatureBaseline("a", 0, (1.0,), (0.5, 0.4))
    with pytest.raises(drift.BaselineError, match="no cuts/proportions for feature 'b'"):
        drift.from_mapping({"features": {"a": {"cuts": [], "proportions": [1.0]}}}, ["a", "b"])
    with pytest.raises(drift.BaselineError, match="not in the layout: c"):
        drift.from_mapping({"features": {"c": {"cuts": [], "proportions": [1.0]}}}, ["a"])
    with pytest.raises(drift.BaselineError, match="does not exist"):
        drift.load_file(tmp_path / "missing.json")



def test_the_committed_training_baseline_loads_in_feature_order():
    from logging_backend.config import REPO_ROOT
    from riskpipe.features import FEATURE_NAMES

    bases = drift.load_file(REPO_ROOT / "model_repository/features/1/baseline.json", FEATURE_NAMES)
    assert [b.feature for b in bases] == list(FEATURE_NAMES)
    assert all(len(b.expected) == len(b.edges) + 1 for b in bases)
