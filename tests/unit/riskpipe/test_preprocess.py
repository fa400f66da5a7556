import json
import math
from datetime import datetime, timezone

import pytest

from riskpipe import schema
from riskpipe.preprocess import Preprocessor, dumps_row, loads_row, parse_row
from riskpipe.schema import RowError

ARRIVAL = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)


def _event(**overrides):
    event = {
        "event_id": "e-1",
        "card_id": "c-1",
        "amount": 100.0,
        "currency": "USD",
        "merchant_id": "m-grocery-001",
        "merchant_category": "grocery",
        "country": "DE",
        "channel": "pos",
        "device_id": "d-1",
        "timestamp": "2026-01-05T10:15:00Z",
        "card_age_days": 400,
        "ip_risk": 0.1,
    }
    event.update(overrides)
    return event


def _raw(**overrides) -> bytes:
    return json.dumps(_event(**overrides)).encode()


def _stage(capacity: int = 100) -> Preprocessor:
    return Preprocessor(dedup_capacity=capacity, clock=lambda: ARRIVAL)


def test_clean_row_is_converted_to_eur_and_carries_empty_flags():
    (row,) = _stage().process([_raw()])
    assert row["amount_eur"] == pytest.approx(100.0 * schema.EUR_PER_UNIT["USD"])
    assert row["amount"] == 100.0 and row["currency"] == "USD"
    assert row["timestamp"] == "2026-01-05T10:15:00.000Z"
    assert row["ts"] == datetime(2026, 1, 5, 10, 15, tzinfo=timezone.utc).timestamp()
    assert row["duplicate"] is False
    assert row["imputed"] == [] and row["unknown_category"] == [] and row["clipped"] == []


def test_row_error_message_names_row_and_field():
    error = RowError(3, "amount", "must be a finite number >= 0")
    assert str(error) == "row 3: field 'amount': must be a finite number >= 0"
    assert (error.row, error.field) == (3, "amount")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "RAW"),
        (b"", "RAW"),
        (b"\xff\xfe", "RAW"),
        (b"[1, 2]", "RAW"),
        (b"[" * 100_000 + b"]" * 100_000, "RAW"),
        (b'{"event_id": "x", "amount": 1' + b"0" * 5000 + b"}", "RAW"),
        (b'"a string"', "RAW"),
        (json.dumps({"amount": 3}).encode(), "event_id"),
        (json.dumps({"event_id": "", "amount": 3}).encode(), "event_id"),
        (json.dumps({"event_id": ["x"], "amount": 3}).encode(), "event_id"),
        (json.dumps({"event_id": "x"}).encode(), "amount"),
        (json.dumps({"event_id": "x", "amount": None}).encode(), "amount"),
        (json.dumps({"event_id": "x", "amount": -0.01}).encode(), "amount"),
        (json.dumps({"event_id": "x", "amount": "12"}).encode(), "amount"),
        (json.dumps({"event_id": "x", "amount": True}).encode(), "amount"),
        (b'{"event_id": "x", "amount": NaN}', "amount"),
        (b'{"event_id": "x", "amount": Infinity}', "amount"),
        (b'{"event_id": "x", "amount": 1' + b"0" * 400 + b"}", "amount"),
    ],
)
def test_unscorable_row_raises_naming_row_and_field(raw, field):
    rows = [_raw(event_id="ok-0"), _raw(event_id="ok-1"), raw]
    with pytest.raises(RowError) as caught:
        _stage().process(rows)
    assert caught.value.row == 2
    assert caught.value.field == field
    assert str(caught.value).startswith(f"row 2: field '{field}': ")


def test_amount_message_matches_the_documented_wording():
    with pytest.raises(RowError, match=r"^row 0: field 'amount': must be a finite number >= 0"):
        parse_row(json.dumps({"event_id": "x", "amount": -5}).encode(), 0)


def test_integer_event_id_and_amount_are_accepted():
    (row,) = _stage().process([json.dumps({"event_id": 17, "amount": 0}).encode()])
    assert row["event_id"] == "17" and row["amount_eur"] == 0.0


def test_missing_and_malformed_optional_fields_are_imputed_and_flagged():
    raw = json.dumps({"event_id": "x", "amount": 5, "ip_risk": "high", "card_age_days": None})
    (row,) = _stage().process([raw.encode()])
    expected = {
        "card_id", "currency", "merchant_id", "merchant_category", "country", "channel",
        "device_id", "card_age_days", "ip_risk", "timestamp",
    }  # fmt: skip
    assert set(row["imputed"]) == expected
    assert row["ip_risk"] == schema.IMPUTE_DEFAULTS["ip_risk"]
    assert row["card_age_days"] == schema.IMPUTE_DEFAULTS["card_age_days"]
    assert row["currency"] == "EUR" and row["merchant_category"] == schema.OTHER
    assert row["timestamp"] == "2026-03-01T12:30:00.000Z"  # the time of arrival


def test_unknown_categories_become_other_and_are_flagged():
    raw = _raw(merchant_category="crypto", country="ZZ", channel="kiosk", currency="XYZ")
    (row,) = _stage().process([raw])
    assert row["merchant_category"] == row["country"] == row["channel"] == "other"
    assert row["currency"] == "other"
    assert row["amount_eur"] == 100.0  # an unknown currency is taken as EUR
    assert set(row["unknown_category"]) == {"merchant_category", "country", "channel", "currency"}


def test_categories_are_case_normalised_before_lookup():
    (row,) = _stage().process([_raw(country="de", channel="POS", currency="usd")])
    assert (row["country"], row["channel"], row["currency"]) == ("DE", "pos", "USD")
    assert row["unknown_category"] == []


def test_outliers_are_clipped_and_flagged():
    (row,) = _stage().process([_raw(amount=1e9, currency="EUR", card_age_days=99999, ip_risk=5.0)])
    assert row["amount_eur"] == schema.CLIP_BOUNDS["amount_eur"][1]
    assert row["card_age_days"] == schema.CLIP_BOUNDS["card_age_days"][1]
    assert row["ip_risk"] == 1.0
    assert set(row["clipped"]) == {"amount_eur", "card_age_days", "ip_risk"}
    assert row["amount"] == 1e9  # the raw amount is kept


def test_timestamp_with_offset_is_converted_to_utc():
    (row,) = _stage().process([_raw(timestamp="2026-01-05T12:15:00+02:00")])
    assert row["timestamp"] == "2026-01-05T10:15:00.000Z"


def test_duplicates_are_flagged_within_and_across_requests():
    stage = _stage()
    first = stage.process([_raw(event_id="a"), _raw(event_id="b"), _raw(event_id="a")])
    assert [r["duplicate"] for r in first] == [False, False, True]
    (again,) = stage.process([_raw(event_id="b")])
    assert again["duplicate"] is True


def test_duplicate_memory_is_bounded_lru():
    stage = _stage(capacity=2)
    stage.process([_raw(event_id="a"), _raw(event_id="b"), _raw(event_id="c")])
    assert stage.process([_raw(event_id="a")])[0]["duplicate"] is False  # "a" was evicted
    assert stage.process([_raw(event_id="c")])[0]["duplicate"] is True


def test_a_failed_request_leaves_the_duplicate_memory_unchanged():
    stage = _stage()
    with pytest.raises(RowError):
        stage.process([_raw(event_id="fresh"), b"not json"])
    assert stage.process([_raw(event_id="fresh")])[0]["duplicate"] is False


def test_processed_row_round_trips_through_json():
    (row,) = _stage().process([_raw()])
    assert loads_row(dumps_row(row), 0) == row
    with pytest.raises(RowError, match="row 4: field 'PROCESSED'"):
        loads_row(b"[]", 4)


def test_dedup_capacity_must_be_positive():
    with pytest.raises(ValueError):
        Preprocessor(dedup_capacity=0)


def test_conversion_table_has_eur_at_one_and_positive_rates():
    assert schema.EUR_PER_UNIT["EUR"] == 1.0
    assert all(rate > 0 and math.isfinite(rate) for rate in schema.EUR_PER_UNIT.values())
