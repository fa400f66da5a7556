import math
import re
from pathlib import Path

import numpy as np
import pytest

from riskpipe import features as F
from riskpipe.features import FEATURE_NAMES, N_FEATURES, FeatureBuilder, merchant_embedding
from riskpipe.schema import RowError

REPO = Path(__file__).resolve().parents[3]
T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z


def _row(**overrides):
    row = {
        "event_id": "e",
        "card_id": "c-1",
        "amount_eur": 50.0,
        "merchant_id": "m-1",
        "merchant_category": "grocery",
        "country": "DE",
        "channel": "pos",
        "device_id": "d-1",
        "ts": T0 + 6 * 3600,
        "card_age_days": 100.0,
        "ip_risk": 0.2,
        "duplicate": False,
    }
    row.update(overrides)
    return row


def _col(x, name):
    return x[:, FEATURE_NAMES.index(name)]


def test_layout_has_unique_names_and_matches_the_configs():
    assert len(set(FEATURE_NAMES)) == N_FEATURES == 45
    for model in ("features", "mlp", "forest", "logreg"):
        text = (REPO / "model_repository" / model / "config.pbtxt").read_text()
        dims = re.search(r'name: "FEATURES" data_type: TYPE_FP32 dims: \[ (\d+) \]', text)
        assert dims and int(dims.group(1)) == N_FEATURES, model


def test_one_hot_groups_have_exactly_one_hot_value():
    x, _ = FeatureBuilder().build([_row(), _row(country="other", channel="kiosk")])
    for group in ("merchant_category=", "country=", "channel="):
        cols = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith(group)]
        np.testing.assert_array_equal(x[:, cols].sum(axis=1), [1.0, 1.0])
    assert _col(x, "country=other")[1] == 1.0 and _col(x, "channel=other")[1] == 1.0


def test_log_amount_and_cyclical_hour():
    x, _ = FeatureBuilder().build([_row(amount_eur=99.0, ts=T0 + 6 * 3600)])
    assert _col(x, "log_amount_eur")[0] == pytest.approx(math.log(100.0))
    assert _col(x, "hour_sin")[0] == pytest.approx(1.0, abs=1e-6)  # 06:00 is a quarter turn
    assert _col(x, "hour_cos")[0] == pytest.approx(0.0, abs=1e-6)
    assert x.dtype == np.float32 and x.shape == (1, N_FEATURES)


def test_card_aggregates_use_history_before_the_event():
    rows = [
        _row(amount_eur=10.0, ts=T0),
        _row(amount_eur=30.0, ts=T0 + 600),
        _row(amount_eur=80.0, ts=T0 + 7200, device_id="d-new"),
    ]
    x, state = FeatureBuilder().build(rows)
    np.testing.assert_array_equal(state["txn_count"], [0, 1, 2])
    np.testing.assert_allclose(state["mean_amount_eur"], [0.0, 10.0, 20.0])
    np.testing.assert_array_equal(_col(x, "card_velocity_1h"), [0, 1, 0])
    np.testing.assert_array_equal(_col(x, "card_velocity_24h"), [0, 1, 2])
    np.testing.assert_array_equal(_col(x, "device_changed"), [0, 0, 1])
    assert _col(x, "card_mean_amount_log")[2] == pytest.approx(math.log1p(20.0))
    assert _col(x, "amount_vs_card_mean")[2] == pytest.approx(math.log1p(80) - math.log1p(20))
    assert list(state["card_id"]) == ["c-1"] * 3
    assert list(state["last_device_id"]) == ["", "d-1", "d-1"]


def test_state_persists_across_requests_and_cards_are_separate():
    builder = FeatureBuilder()
    builder.build([_row(card_id="a", amount_eur=10.0)])
    _, state = builder.build([_row(card_id="a", ts=T0 + 7 * 3600), _row(card_id="b")])
    np.testing.assert_array_equal(state["txn_count"], [1, 0])


def test_duplicates_and_unknown_cards_do_not_update_the_state():
    builder = FeatureBuilder()
    _, state = builder.build(
        [_row(duplicate=True), _row(card_id="unknown"), _row(card_id="unknown")]
    )
    np.testing.assert_array_equal(state["updated"], [False, False, False])
    np.testing.assert_array_equal(state["txn_count"], [0, 0, 0])
    assert len(builder) == 1  # only c-1 was looked up


def test_card_state_is_bounded():
    builder = FeatureBuilder(capacity=2)
    builder.build([_row(card_id=c) for c in ("a", "b", "c")])
    assert len(builder) == 2
    _, state = builder.build([_row(card_id="a", ts=T0 + 9 * 3600)])
    assert state["txn_count"][0] == 0  # "a" was the least recently seen, so it was dropped


def test_recent_timestamps_are_bounded_per_card():
    rows = [_row(ts=T0 + i) for i in range(F.RECENT_TIMESTAMPS + 10)]
    _, state = FeatureBuilder().build(rows)
    assert state["velocity_1h"][-1] == F.RECENT_TIMESTAMPS
    assert state["txn_count"][-1] == F.RECENT_TIMESTAMPS + 9


def test_merchant_embedding_is_stable_signed_and_two_hot():
    vec = merchant_embedding("m-electronics-003")
    assert vec == merchant_embedding("m-electronics-003")
    assert len(vec) == F.MERCHANT_HASH_DIM
    assert sum(abs(v) for v in vec) in (2.0, 0.0)  # two signed hits, possibly cancelling
    x, _ = FeatureBuilder().build([_row(merchant_id="m-electronics-003")])
    np.testing.assert_array_equal(x[0, -F.MERCHANT_HASH_DIM :], vec)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (_row(amount_eur="12"), "amount_eur"),
        (_row(ts=float("nan")), "ts"),
        (_row(amount_eur=-1.0), "amount_eur"),
        ({k: v for k, v in _row().items() if k != "country"}, "country"),
    ],
)
def test_bad_processed_row_raises_and_leaves_state_unchanged(row, field):
    builder = FeatureBuilder()
    with pytest.raises(RowError) as caught:
        builder.build([_row(), row])
    assert (caught.value.row, caught.value.field) == (1, field)
    assert len(builder) == 0
