"""Helpers shared by the stage adapters (``model_repository/*/1/model.py``).

Nothing here imports Triton: each function takes the stub's ``triton_python_backend_utils``
module as its ``pb`` argument, so unit tests can pass a stand-in. The adapters themselves are
:class:`adapters.stage_model.StageModel` and :class:`adapters.members.MemberModel`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from logging_backend.errors import InvalidInput


class InputError(InvalidInput):
    """Raised when a request's tensor is missing, empty, or has the wrong dtype or shape."""


def model_parameters(args: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` block of the model's config as ``{key: string_value}``."""
    config = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def version_dir(args: dict[str, Any]) -> Path:
    """The folder of the model version Triton is loading (holds its artifacts)."""
    return Path(args["model_repository"]) / str(args["model_version"])


def _array(pb: ModuleType, request: Any, name: str, dlpack: bool = False) -> np.ndarray:
    tensor = pb.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise InputError(f"input '{name}': missing")
    if dlpack:
        # Numeric tensors through DLPack: zero-copy, and correct where the stub's own NumPy
        # bridge is not (the 2.51 stub under NumPy 2, docs/gpu.md). A tensor DLPack cannot
        # carry (strings) goes the usual way, and the caller's dtype check names it.
        try:
            return np.from_dlpack(tensor)
        except Exception:
            pass
    return tensor.as_numpy()


def row_count(pb: ModuleType, request: Any, name: str) -> int:
    """Rows of input ``name`` (0 when it is missing or has no batch dimension)."""
    tensor = pb.get_input_tensor_by_name(request, name)
    shape = tensor.shape() if tensor is not None else ()
    return int(shape[0]) if len(shape) > 0 else 0


def strings(pb: ModuleType, request: Any, name: str) -> np.ndarray:
    """Input ``name`` as an object array of bytes, shape ``[rows, 1]``.

    Raises:
        InputError: missing, not a string tensor, not ``[rows, 1]``, or no rows.
    """
    array = _array(pb, request, name)
    if array.dtype != np.object_:
        raise InputError(f"input '{name}': must be TYPE_STRING, got {array.dtype}")
    if array.ndim != 2 or array.shape[1] != 1:
        raise InputError(f"input '{name}': must have shape [rows, 1], got {list(array.shape)}")
    if array.shape[0] == 0:
        raise InputError(f"input '{name}': empty request (no rows)")
    return array


def floats(pb: ModuleType, request: Any, name: str, width: int) -> np.ndarray:
    """Input ``name`` as float32 ``[rows, width]``.

    Raises:
        InputError: missing, not FP32, of the wrong shape, without rows, or not finite.
    """
    array = _array(pb, request, name, dlpack=True)
    if array.dtype != np.float32:
        raise InputError(f"input '{name}': must be TYPE_FP32, got {array.dtype}")
    if array.ndim != 2 or array.shape[1] != width:
        raise InputError(f"input '{name}': must have shape [rows, {width}], got {array.shape}")
    if array.shape[0] == 0:
        raise InputError(f"input '{name}': empty request (no rows)")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise InputError(f"row {int(bad[0])}: input '{name}': values must be finite")
    return array


def request_id(pb: ModuleType, request: Any) -> str:
    """The request id from the ``REQUEST_ID`` tensor (set by `preprocess`), else Triton's."""
    tensor = pb.get_input_tensor_by_name(request, "REQUEST_ID")
    if tensor is not None:
        array = tensor.as_numpy()
        if array.size and isinstance(array.flat[0], (bytes, str)):
            value = array.flat[0]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return request.request_id() or ""


_NUMPY2 = int(np.__version__.split(".", 1)[0]) >= 2
_USED = b"used_dltensor"  # the DLPack protocol's name for a consumed capsule (kept alive here)


def _mark_consumed(capsule: Any) -> None:
    import ctypes  # noqa: PLC0415 - only the NumPy-2 output path needs it

    set_name = ctypes.pythonapi.PyCapsule_SetName
    set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
    set_name(capsule, _USED)


def float_tensor(pb: ModuleType, name: str, array: np.ndarray) -> Any:
    """A numeric output tensor.

    Under NumPy 2 it goes through DLPack: the 2.51 stub's own NumPy bridge computes the byte
    size wrongly there (docs/gpu.md). The stub marks the capsule it consumed ``used_dlpack``
    instead of the protocol's ``used_dltensor`` (and frees the tensor itself later), so NumPy's
    capsule destructor would report an error for every response; the capsule is renamed to the
    standard name once Triton holds the tensor. Under NumPy 1 it takes the classic path: NumPy
    1's DLPack deleter does not take the GIL, and Triton releases output tensors without it.
    """
    array = np.ascontiguousarray(array)
    if not _NUMPY2:
        return pb.Tensor(name, array)
    capsule = array.__dlpack__()
    tensor = pb.Tensor.from_dlpack(name, capsule)
    _mark_consumed(capsule)
    return tensor


def string_tensor(pb: ModuleType, name: str, values: list[bytes] | list[str]) -> Any:
    """A ``[rows, 1]`` TYPE_STRING output tensor."""
    encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    return pb.Tensor(name, np.array(encoded, dtype=np.object_).reshape(-1, 1))


def error_response(pb: ModuleType, message: str) -> Any:
    """A response carrying an INVALID_ARG error with ``message``."""
    return pb.InferenceResponse(
        output_tensors=[], error=pb.TritonError(message, pb.TritonError.INVALID_ARG)
    )


def internal_error_response(pb: ModuleType, stage: str, exc: BaseException) -> Any:
    """An INTERNAL error for one request that failed unexpectedly (traceback to the log only).

    The message names the stage and the exception type, never a traceback or a server path;
    the traceback goes to Triton's log (and from there into ``server_logs``).
    """
    import traceback  # noqa: PLC0415 - only on this rare path

    pb.Logger.log_error(
        f"{stage}: request failed: " + "".join(traceback.format_exception(exc)).rstrip()
    )
    return pb.InferenceResponse(
        output_tensors=[],
        error=pb.TritonError(
            f"{stage}: internal error ({type(exc).__name__}); see the server log",
            pb.TritonError.INTERNAL,
        ),
    )
