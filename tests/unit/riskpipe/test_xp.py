import numpy as np
import pytest

from riskpipe import xp as xp_module
from riskpipe.xp import get_xp, to_numpy


def test_cpu_is_numpy_without_a_reason():
    chosen = get_xp("cpu")
    assert chosen.xp is np and chosen.device == "cpu" and chosen.reason == ""


@pytest.mark.parametrize("device", ["gpu", "auto"])
def test_missing_gpu_falls_back_to_numpy_with_a_reason(monkeypatch, device):
    monkeypatch.setattr(xp_module, "_cupy_or_reason", lambda: (None, "CuPy is not importable"))
    chosen = get_xp(device)
    assert chosen.xp is np and chosen.device == "cpu"
    assert f"device '{device}'" in chosen.reason and "CuPy is not importable" in chosen.reason


def test_gpu_is_used_when_cupy_sees_one(monkeypatch):
    fake_cupy = object()
    monkeypatch.setattr(xp_module, "_cupy_or_reason", lambda: (fake_cupy, ""))
    chosen = get_xp("GPU")
    assert chosen.xp is fake_cupy and chosen.device == "gpu" and chosen.reason == ""


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="'tpu'"):
        get_xp("tpu")


def test_to_numpy_accepts_numpy_lists_and_device_arrays():
    a = np.arange(3)
    assert to_numpy(a) is a
    np.testing.assert_array_equal(to_numpy([1, 2]), [1, 2])

    class DeviceArray:
        def get(self):
            return np.array([7.0])

    np.testing.assert_array_equal(to_numpy(DeviceArray()), [7.0])
