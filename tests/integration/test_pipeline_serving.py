"""The `pipeline` ensemble on the real server: answers, request ids, and refused input."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from running import RunningStack
from tritonclient.utils import InferenceServerException

from training.generator import generate

DECISIONS = {"approve", "review", "decline"}
INVALID_ARG = "StatusCode.INVALID_ARGUMENT"


def _events(n: int, seed: int = 11) -> list[dict]:
    return [item.event for item in generate(n, seed)]


def _refused(call) -> InferenceServerException:  # noqa: ANN001 - a zero-argument callable
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == INVALID_ARG, caught.value
    return caught.value


def _still_serving(stack: RunningStack) -> None:
    result = stack.score(_events(2, seed=99))
    assert len(result.decisions) == 2


def test_batch_of_64_gets_a_probability_vector_and_decision_per_row(stack: RunningStack) -> None:
    result = stack.score(_events(64), request_id="batch-64")
    assert result.probabilities.shape == (64, 3)
    assert result.probabilities.dtype == np.float32
    assert np.all(result.probabilities >= 0)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert len(result.decisions) == 64
    assert set(result.decisions) <= DECISIONS


def test_request_id_echoes_the_clients_id(stack: RunningStack) -> None:
    result = stack.score(_events(3), request_id="client-id-42")
    assert result.request_id == "client-id-42"


def test_request_id_is_a_fresh_uuid_when_the_client_sends_none(stack: RunningStack) -> None:
    first = stack.score(_events(2))
    second = stack.score(_events(2, seed=12))
    assert uuid.UUID(first.request_id).version == 4
    assert uuid.UUID(second.request_id).version == 4
    assert first.request_id != second.request_id


BAD_ROWS = {
    "not JSON": (b"{'event_id': 'x', amount: 3", "RAW"),
    "empty row": (b"", "RAW"),
    "JSON but not an object": (b"[1, 2, 3]", "RAW"),
    "no event_id": (json.dumps({"card_id": "c1", "amount": 12.5}).encode(), "event_id"),
    "amount negative": (json.dumps({"event_id": "bad-1", "amount": -5}).encode(), "amount"),
    "amount NaN": (b'{"event_id": "bad-2", "amount": NaN}', "amount"),
    "amount not a number": (json.dumps({"event_id": "bad-3", "amount": "abc"}).encode(), "amount"),
    "amount missing": (json.dumps({"event_id": "bad-4"}).encode(), "amount"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_is_refused_naming_row_and_field(stack: RunningStack, case: str) -> None:
    payload, field = BAD_ROWS[case]
    events: list = _events(4, seed=31)
    events[2] = payload
    # request ids follow one rule (riskpipe.limits): no spaces
    error = _refused(lambda: stack.score(events, request_id=f"bad-{case.replace(' ', '-')}"))
    assert "row 2" in error.message(), error.message()
    assert f"'{field}'" in error.message(), error.message()
    _still_serving(stack)


def test_empty_request_is_refused(stack: RunningStack) -> None:
    error = _refused(lambda: stack.infer_raw(np.empty((0, 1), dtype=object)))
    assert "RAW" in error.message(), error.message()
    _still_serving(stack)


@pytest.mark.parametrize(
    ("data", "datatype"),
    [
        (np.ones((2, 1), dtype=np.float32), "FP32"),
        (np.ones((2, 1), dtype=np.int32), "INT32"),
    ],
    ids=["fp32", "int32"],
)
def test_wrong_dtype_is_refused_naming_the_input(
    stack: RunningStack, data: np.ndarray, datatype: str
) -> None:
    error = _refused(lambda: stack.infer_raw(data, datatype=datatype))
    assert "RAW" in error.message(), error.message()
    _still_serving(stack)


@pytest.mark.parametrize(
    "shape", [(2, 2), (1, 1, 1), (3,)], ids=["two-per-row", "three-dims", "no-row-dim"]
)
def test_wrong_shape_is_refused_naming_the_input(stack: RunningStack, shape: tuple) -> None:
    data = np.array([json.dumps(e).encode() for e in _events(int(np.prod(shape)))], dtype=object)
    error = _refused(lambda: stack.infer_raw(data.reshape(shape)))
    assert "RAW" in error.message(), error.message()
    _still_serving(stack)


def test_unknown_input_name_is_refused(stack: RunningStack) -> None:
    data = np.array([[json.dumps(_events(1)[0]).encode()]], dtype=object)
    _refused(lambda: stack.infer_raw(data, name="EVENTS"))
    _still_serving(stack)


def test_server_is_ready_after_all_bad_input(stack: RunningStack) -> None:
    assert stack.alive(), stack.log_tail()
