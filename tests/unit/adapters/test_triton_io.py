"""The adapter helpers against a stand-in for triton_python_backend_utils."""

import json
import types
from pathlib import Path

import numpy as np
import pytest

from adapters import members, triton_io
from adapters.triton_io import InputError
from riskpipe.features import N_FEATURES

REPO = Path(__file__).resolve().parents[3]


class _Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, np.asarray(array)

    def as_numpy(self):
        return self.array

    def __dlpack__(self, stream=None):
        return self.array.__dlpack__()

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    @classmethod
    def from_dlpack(cls, name, array):
        return cls(name, np.from_dlpack(array))

    def shape(self):
        return list(self.array.shape)


class _TritonError(Exception):
    INVALID_ARG = "INVALID_ARG"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class _Response:
    def __init__(self, output_tensors, error=None):
        self.outputs, self.error = {t.name: t.array for t in output_tensors}, error


class _Request:
    def __init__(self, tensors, request_id=""):
        self.tensors, self._id = tensors, request_id

    def request_id(self):
        return self._id


def _logger():
    logged = []
    return types.SimpleNamespace(
        log_warn=lambda m: logged.append(("warn", m)),
        log_info=lambda m: logged.append(("info", m)),
        logged=logged,
    )


PB = types.SimpleNamespace(
    Tensor=_Tensor,
    TritonError=_TritonError,
    InferenceResponse=_Response,
    Logger=_logger(),
    get_input_tensor_by_name=lambda request, name: request.tensors.get(name),
)


def _request(request_id="", **arrays):
    return _Request({k: _Tensor(k, v) for k, v in arrays.items()}, request_id)


def test_strings_accepts_a_column_of_bytes():
    raw = np.array([[b"a"], [b"b"]], dtype=object)
    np.testing.assert_array_equal(triton_io.strings(PB, _request(RAW=raw), "RAW"), raw)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((2, 1), dtype=np.float32), "must be TYPE_STRING"),
        (np.array([[b"a", b"b"]], dtype=object), "shape [rows, 1]"),
        (np.array([b"a"], dtype=object), "shape [rows, 1]"),
        (np.empty((0, 1), dtype=object), "empty request"),
    ],
)
def test_strings_refuses_wrong_dtype_shape_or_no_rows(array, message):
    with pytest.raises(InputError, match=r"input 'RAW'") as caught:
        triton_io.strings(PB, _request(RAW=array), "RAW")
    assert message in str(caught.value)


def test_missing_input_is_an_input_error():
    with pytest.raises(InputError, match="input 'RAW': missing"):
        triton_io.strings(PB, _request(), "RAW")
    assert triton_io.row_count(PB, _request(), "RAW") == 0


def test_floats_checks_width_dtype_and_finiteness():
    good = np.zeros((2, 3), dtype=np.float32)
    read = triton_io.floats(PB, _request(P=good), "P", 3)
    assert np.shares_memory(read, good)  # DLPack: no copy
    with pytest.raises(InputError, match="TYPE_FP32"):
        triton_io.floats(PB, _request(P=good.astype(np.float64)), "P", 3)
    with pytest.raises(InputError, match=r"shape \[rows, 4\]"):
        triton_io.floats(PB, _request(P=good), "P", 4)
    bad = good.copy()
    bad[1, 2] = np.inf
    with pytest.raises(InputError, match="row 1: input 'P'"):
        triton_io.floats(PB, _request(P=bad), "P", 3)


def test_request_id_prefers_the_tensor_then_tritons_id():
    ids = np.array([[b"rid-1"], [b"rid-1"]], dtype=object)
    assert triton_io.request_id(PB, _request("triton-id", REQUEST_ID=ids)) == "rid-1"
    assert triton_io.request_id(PB, _request("triton-id")) == "triton-id"


def test_error_response_is_invalid_arg_with_the_message():
    response = triton_io.error_response(PB, "row 2: field 'amount': must be ...")
    assert response.error.code == _TritonError.INVALID_ARG
    assert str(response.error) == "row 2: field 'amount': must be ..."
    assert response.outputs == {}


def test_string_tensor_is_a_bytes_column():
    tensor = triton_io.string_tensor(PB, "DECISION", ["approve", "review"])
    assert tensor.array.shape == (2, 1) and tensor.array[1, 0] == b"review"


def test_model_parameters_reads_string_values():
    config = {"parameters": {"review_at": {"string_value": "0.25"}}}
    assert triton_io.model_parameters({"model_config": json.dumps(config)}) == {"review_at": "0.25"}


class _Member(members.MemberModel):
    pb = PB


@pytest.fixture
def member(monkeypatch):
    monkeypatch.setenv("STAGELOG_LOGGING", "off")
    monkeypatch.setenv("STAGELOG_DEVICE", "cpu")
    model = _Member()
    model.initialize(
        {
            "model_name": "logreg",
            "model_version": "1",
            "model_repository": str(REPO / "model_repository" / "logreg"),
            "model_config": json.dumps({"name": "logreg"}),
        }
    )
    yield model
    model.finalize()


def test_member_adapter_answers_each_request_in_order(member):
    x = np.random.default_rng(1).normal(size=(4, N_FEATURES)).astype(np.float32)
    bad = np.zeros((2, N_FEATURES - 1), dtype=np.float32)
    responses = member.execute([_request(FEATURES=x), _request(FEATURES=bad), _request()])
    assert responses[0].error is None
    probs = responses[0].outputs["PROBS"]
    assert probs.shape == (4, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert "input 'FEATURES'" in str(responses[1].error)
    assert responses[1].error.code == _TritonError.INVALID_ARG
    assert "missing" in str(responses[2].error)
