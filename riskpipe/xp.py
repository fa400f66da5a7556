"""The array module member inference runs on: numpy on CPU, CuPy on a GPU.

Member inference (``riskpipe.members``) is written against ``xp`` only, so moving it to a
GPU swaps the module and nothing else. Asking for a GPU that is not there never fails and
never falls back silently: ``get_xp`` returns the reason, and the caller logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

DEVICES = ("cpu", "gpu", "auto")


@dataclass(frozen=True)
class ArrayModule:
    """The chosen array module.

    Attributes:
        xp: ``numpy`` or ``cupy``.
        device: ``"cpu"`` or ``"gpu"``: where arrays made with ``xp`` live.
        reason: why this module was chosen when it differs from what was asked; empty
            when the request was met as asked.
    """

    xp: ModuleType
    device: str
    reason: str = ""


def _cupy_or_reason() -> tuple[ModuleType | None, str]:
    try:
        import cupy  # noqa: PLC0415 - optional dependency, only imported when a GPU is asked for
    except Exception as exc:  # ImportError, or a CUDA library error raised at import
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy sees no CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy sees no CUDA device (count 0)"
    return cupy, ""


def get_xp(device: str = "cpu") -> ArrayModule:
    """Choose the array module for ``device``.

    Args:
        device: ``"cpu"`` (numpy), ``"gpu"`` (CuPy; numpy with a reason when CuPy or a GPU
            is missing) or ``"auto"`` (CuPy when it sees a GPU, else numpy).

    Returns:
        The module, the device it uses, and the reason for any fallback.

    Raises:
        ValueError: ``device`` is not one of ``cpu``, ``gpu``, ``auto``.
    """
    device = device.strip().lower()
    if device not in DEVICES:
        raise ValueError(f"device {device!r} must be one of {', '.join(DEVICES)}")
    if device == "cpu":
        return ArrayModule(np, "cpu")
    cupy, why = _cupy_or_reason()
    if cupy is not None:
        return ArrayModule(cupy, "gpu")
    if device == "gpu":
        return ArrayModule(np, "cpu", f"device 'gpu' asked for, running on CPU: {why}")
    return ArrayModule(np, "cpu", f"device 'auto' chose CPU: {why}")


def to_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a numpy array (copies from the GPU when it is a CuPy array)."""
    if isinstance(array, np.ndarray):
        return array
    get = getattr(array, "get", None)
    if callable(get):
        return get()
    return np.asarray(array)
