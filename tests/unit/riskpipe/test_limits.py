"""Hostile input: request ids, JSON size/depth, lone surrogates (riskpipe.limits, preprocess)."""

import json

import pytest

from riskpipe import limits
from riskpipe.preprocess import Preprocessor, parse_row
from riskpipe.schema import RowError


def _raw(**fields) -> bytes:
    event = {"event_id": "e-1", "amount": 10.0, "merchant_id": "m-1"}
    event.update(fields)
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    "value", ["a", "0f8e2c1e-4b4f-4c36-9d4a-0f6f4a1b2c3d", "client-42/7", "x" * 128, "a:b=c+d@e"]
)
def test_request_id_rule_accepts_ordinary_ids(value):
    assert limits.request_id_problem(value) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "empty"),
        ("x" * 129, "longer than 128"),
        ("x" * 100_000, "longer than 128"),
        ("a b", "whitespace"),
        ("a\nb", "whitespace"),
        ("caf\u00e9", "outside"),
        ('a"b', "outside"),
        ("\ud800", "outside"),
    ],
)
def test_request_id_rule_refuses_long_or_odd_ids(value, words):
    problem = limits.request_id_problem(value)
    assert problem is not None and words in problem


def test_depth_is_measured_without_recursion_and_ignores_brackets_in_strings():
    deep = "[" * 200_000 + "]" * 200_000
    assert limits.json_depth_exceeds(deep, 32)
    assert not limits.json_depth_exceeds(json.dumps({"a": "[[[[[[[[[[" * 10}), 3)
    assert not limits.json_depth_exceeds(json.dumps({"a": {"b": [1]}}), 3)
    assert limits.json_depth_exceeds(json.dumps({"a": {"b": [[1]]}}), 3)


@pytest.mark.parametrize(("levels", "words"), [(120_000, "larger than"), (5_000, "nested deeper")])
def test_row_nested_deep_is_invalid_arg_on_raw(levels, words):
    nested = '{"event_id": "e", "amount": 1, "x": ' + "[" * levels + "]" * levels + "}"
    with pytest.raises(RowError) as err:
        parse_row(nested.encode(), 3)
    assert err.value.row == 3 and err.value.field == "RAW"
    assert words in err.value.message


def test_row_over_the_size_limit_is_invalid_arg_on_raw():
    with pytest.raises(RowError) as err:
        parse_row(_raw(pad="x" * limits.MAX_ROW_BYTES), 0)
    assert err.value.field == "RAW" and "larger than" in err.value.message


@pytest.mark.parametrize("field", ["merchant_id", "card_id", "device_id", "event_id"])
def test_lone_surrogate_names_row_and_field(field):
    raw = _raw(**{field: "a\ud800b"})  # json.dumps writes the escape \ud800
    assert b"\\ud800" in raw
    with pytest.raises(RowError) as err:
        parse_row(raw, 5)
    assert err.value.row == 5 and err.value.field == field
    assert "surrogate" in err.value.message
    str(err.value).encode("utf-8")  # the message itself is valid UTF-8


def test_lone_surrogate_in_a_nested_value_or_a_key_is_named():
    with pytest.raises(RowError) as err:
        parse_row(_raw(extra={"tags": ["ok", "\udc00"]}), 0)
    assert err.value.field == "extra.tags[1]"
    with pytest.raises(RowError) as err:
        parse_row(_raw(**{"k\ud83d": 1}), 0)
    assert err.value.field.startswith("k")
    str(err.value).encode("utf-8")


def test_a_proper_surrogate_pair_is_valid_text():
    event = parse_row(_raw(merchant_id="caf\u00e9 \U0001f600"), 0)
    assert event["merchant_id"] == "caf\u00e9 \U0001f600"


def test_a_bad_row_leaves_the_dedup_memory_untouched():
    stage = Preprocessor(dedup_capacity=10)
    with pytest.raises(RowError):
        stage.process([_raw(event_id="a"), _raw(event_id="b", card_id="\ud800")])
    rows = stage.process([_raw(event_id="a")])
    assert rows[0]["duplicate"] is False
