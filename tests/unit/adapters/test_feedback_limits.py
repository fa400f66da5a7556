"""Feedback applies the same request-id rule as the pipeline and bounds DETAIL's JSON."""

import json

import pytest

from adapters.feedback import FeedbackError, validate_row
from riskpipe import limits


def _report(request_id="r-1", detail=None):
    return validate_row(0, request_id, 0, "action", "approve", detail)


def test_detail_nested_2000_deep_under_4kb_is_a_coded_error():
    detail = '{"a":' + "[" * 2000 + "]" * 2000 + "}"  # RecursionError in json.loads before
    assert len(detail) < 4096
    with pytest.raises(FeedbackError) as err:
        _report(detail=detail)
    assert err.value.field == "DETAIL" and "nested deeper" in str(err.value)


def test_detail_nested_deeper_than_the_limit_but_short_is_refused():
    depth = limits.MAX_JSON_DEPTH + 1
    detail = '{"a":' * depth + "1" + "}" * depth
    assert len(detail) < 4096
    with pytest.raises(FeedbackError) as err:
        _report(detail=detail)
    assert err.value.field == "DETAIL" and "nested deeper" in str(err.value)


def test_detail_with_a_lone_surrogate_is_refused_naming_where():
    with pytest.raises(FeedbackError) as err:
        _report(detail=json.dumps({"note": "\ud800"}))
    assert err.value.field == "DETAIL" and "note" in str(err.value)


@pytest.mark.parametrize("request_id", ["x" * 129, "x" * 100_000, "a b", "caf\u00e9", ""])
def test_feedback_refuses_exactly_the_ids_the_pipeline_refuses(request_id):
    assert limits.request_id_problem(request_id) is not None
    with pytest.raises(FeedbackError) as err:
        _report(request_id=request_id)
    assert err.value.field == "REQUEST_ID"


@pytest.mark.parametrize("request_id", ["x" * 128, "0f8e2c1e-4b4f-4c36-9d4a-0f6f4a1b2c3d"])
def test_feedback_accepts_every_id_the_pipeline_accepts(request_id):
    assert limits.request_id_problem(request_id) is None
    assert _report(request_id=request_id).request_id == request_id
