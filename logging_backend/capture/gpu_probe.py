"""GPU timing of one stage: CUDA events per request and the process's GPU memory.

Everything here imports without CuPy or NVML and degrades to "no GPU": a CPU probe returns
``None`` everywhere, so ``gpu_ms`` / ``gpu_mem_bytes`` stay NULL (never 0) and ``device`` stays
``cpu``.

On the request path a GPU stage pays for two ``cudaEventRecord`` calls (events come from a
pool, so none is created per request)::

    span = probe.start()                  # records a start event on the current stream
    probs = member.predict_proba(x)       # GPU work (CuPy)
    rec.gpu_time(probe.stop(span))        # records the end event; returns a PendingGpuTime

The stage logger's flush thread later calls ``PendingGpuTime.resolve()`` (waits for the end
event, reads the elapsed time, returns both events to the pool) and ``probe.memory_bytes()``
(NVML, with the device handle cached when the probe was made). The device sampler of the
collector (:mod:`logging_backend.collector.sampler`) reads whole-GPU telemetry.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from logging_backend.capture.records import PolicyNotice
from logging_backend.errors import ConfigError

LOG = logging.getLogger("stagelog.gpu")


def _import_cupy() -> ModuleType | None:
    try:
        import cupy  # noqa: PLC0415 - optional; only on a GPU machine
    except Exception:  # ImportError or a CUDA library error raised at import
        return None
    return cupy


def _import_nvml() -> ModuleType | None:
    try:
        import pynvml  # noqa: PLC0415 - nvidia-ml-py; the library itself may be missing
    except Exception:
        return None
    return pynvml


# --------------------------------------------------------------------------- per-stage timing


class PendingGpuTime:
    """The two CUDA events around one request's GPU work; resolved by the flush thread."""

    __slots__ = ("_probe", "_start", "_end", "_ms", "_done")

    def __init__(self, probe: GpuProbe, start: Any, end: Any) -> None:
        self._probe = probe
        self._start = start
        self._end = end
        self._ms: float | None = None
        self._done = False

    def resolve(self) -> float | None:
        """Wait for the end event and return the elapsed GPU time in ms (idempotent)."""
        if not self._done:
            self._done = True
            try:
                self._end.synchronize()
                self._ms = float(self._probe.cupy.cuda.get_elapsed_time(self._start, self._end))
            finally:
                self._probe._release(self._start, self._end)
                self._start = self._end = None
        return self._ms


class GpuProbe:
    """GPU timing and memory of one model instance; a CPU probe does nothing.

    Build it with :meth:`create` (or :func:`probe_for_instance` in a ``model.py``).

    Attributes:
        device: ``"cpu"`` or ``"gpu"``.
        device_id: CUDA device ordinal; ``None`` on CPU.
        reason: Why a GPU was asked for and not used (empty otherwise).
    """

    def __init__(
        self,
        device: str = "cpu",
        device_id: int | None = None,
        cupy: ModuleType | None = None,
        nvml: ModuleType | None = None,
        nvml_handle: Any = None,
        reason: str = "",
    ) -> None:
        self.device = device
        self.device_id = device_id
        self.cupy = cupy
        self.reason = reason
        self._nvml = nvml
        self._nvml_handle = nvml_handle
        self._pool: deque[Any] = deque()
        self._pid = os.getpid()
        self._memory_source = "nvml" if nvml_handle is not None else "cupy-pool"

    @classmethod
    def create(
        cls,
        device: str,
        device_id: int | None = 0,
        cupy: ModuleType | None = None,
        nvml: ModuleType | None = None,
    ) -> GpuProbe:
        """Make the probe of an instance running on ``device`` (``cpu`` or ``gpu``).

        On ``gpu`` it binds ``device_id`` as the current CUDA device of this process and caches
        the NVML handle of the same device (matched by PCI bus id). A GPU that cannot be used
        gives a CPU probe whose ``reason`` says why (the caller logs it).

        Args:
            device: ``"cpu"`` or ``"gpu"`` (``riskpipe.xp.ArrayModule.device``).
            device_id: CUDA device ordinal (Triton's ``model_instance_device_id``).
            cupy: The CuPy module (tests pass a fake); imported when omitted.
            nvml: The ``pynvml`` module (tests pass a fake); imported when omitted.
        """
        if device not in ("cpu", "gpu"):
            raise ConfigError(f"device {device!r} must be 'cpu' or 'gpu'")
        if device == "cpu":
            return cls()
        cupy = cupy or _import_cupy()
        if cupy is None:
            return cls(reason="GPU asked for but CuPy is not importable")
        device_id = int(device_id or 0)
        try:
            cupy.cuda.Device(device_id).use()
            bus_id = cupy.cuda.Device(device_id).pci_bus_id
        except Exception as exc:
            return cls(reason=f"CUDA device {device_id} unusable ({type(exc).__name__}: {exc})")
        nvml = nvml if nvml is not None else _import_nvml()
        handle = None
        if nvml is not None:
            try:
                nvml.nvmlInit()
                try:
                    handle = nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
                except Exception:
                    handle = nvml.nvmlDeviceGetHandleByIndex(device_id)
            except Exception as exc:
                LOG.warning("NVML unavailable (%s): process GPU memory from CuPy's pool", exc)
                handle = None
        return cls("gpu", device_id, cupy, nvml, handle)

    # -- request path -----------------------------------------------------------------------

    def start(self) -> Any:
        """Record the start event on the current stream; ``None`` on CPU."""
        if self.cupy is None:
            return None
        event = self._event()
        event.record()
        return event

    def stop(self, start: Any) -> PendingGpuTime | None:
        """Record the end event; the returned timing is resolved off the request path."""
        if start is None or self.cupy is None:
            return None
        end = self._event()
        end.record()
        return PendingGpuTime(self, start, end)

    def _event(self) -> Any:
        try:
            return self._pool.pop()
        except IndexError:
            return self.cupy.cuda.Event()

    def _release(self, *events: Any) -> None:
        self._pool.extend(e for e in events if e is not None)

    # -- flush thread -----------------------------------------------------------------------

    def memory_bytes(self) -> int | None:
        """GPU memory this process holds (NVML; CuPy's pool when NVML cannot say); ``None``."""
        if self.cupy is None:
            return None
        if self._nvml_handle is not None:
            try:
                for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(self._nvml_handle):
                    if proc.pid == self._pid and proc.usedGpuMemory is not None:
                        return int(proc.usedGpuMemory)
            except Exception as exc:
                LOG.debug("NVML process list failed: %s", exc)
            # In a container NVML may list host pids only: fall through to CuPy's own count.
        try:
            return int(self.cupy.get_default_memory_pool().total_bytes())
        except Exception:
            return None


def probe_for_instance(args: Mapping[str, Any], device: str) -> GpuProbe:
    """The probe of a Triton model instance placed on ``device`` (``cpu`` or ``gpu``).

    Args:
        args: Triton's ``initialize`` args (``model_instance_device_id`` for KIND_GPU).
        device: Where the instance's arrays live (``riskpipe.xp.ArrayModule.device``).
    """
    device_id = int(args.get("model_instance_device_id") or 0) if device == "gpu" else None
    return GpuProbe.create(device, device_id)


def record_fallback(logger: Any, reason: str) -> None:
    """Write a ``logging_policy`` row saying that a stage asked for a GPU and runs on CPU.

    The caller also logs ``reason`` (Triton's log); this row keeps it next to the data.
    Null loggers (logging off) have no processor and are skipped.
    """
    processor = getattr(logger, "processor", None)
    identity = getattr(logger, "identity", None)
    if not reason or processor is None or identity is None:
        return
    processor.emit(
        PolicyNotice(
            identity=identity,
            ts_ns=time.time_ns(),
            scope="device",
            policy="cpu_fallback",
            sample_rate=1.0,
            reason=reason,
        )
    )
