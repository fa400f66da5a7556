"""GPU timing and GPU telemetry: CUDA events per stage, process GPU memory, a device sampler.

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
(NVML, with the device handle cached when the probe was made). ``DeviceSampler`` reads
utilisation, memory, power and temperature of every GPU for ``system_samples``;
``SamplerThread`` writes those rows to the spool about once a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

LOG = logging.getLogger("stagelog.gpu")

SAMPLE_INTERVAL_S = 1.0  # one system_samples row per GPU about once a second
SEGMENT_EVERY_S = 10.0  # rows are written to the spool in one segment per this many seconds


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
            raise ValueError(f"device {device!r} must be 'cpu' or 'gpu'")
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
    from logging_backend.stage import PolicyNotice  # noqa: PLC0415 - avoid a cycle at import

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


# --------------------------------------------------------------------------- device sampler


def gpu_count(nvml: ModuleType | None = None) -> int:
    """How many GPUs NVML sees (0 without NVML or a driver)."""
    nvml = nvml if nvml is not None else _import_nvml()
    if nvml is None:
        return 0
    try:
        nvml.nvmlInit()
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return 0


class DeviceSampler:
    """Reads every GPU's utilisation, memory, power and temperature through NVML.

    Without NVML or without a GPU, :meth:`sample` returns ``[]`` and the reason is logged once.
    """

    def __init__(self, nvml: ModuleType | None = None, host: str | None = None) -> None:
        import socket

        import psutil

        self.host = host or socket.gethostname()
        self._process = psutil.Process()
        self._nvml = nvml if nvml is not None else _import_nvml()
        self.handles: list[Any] = []
        self.reason = ""
        if self._nvml is None:
            self.reason = "nvidia-ml-py is not importable"
        else:
            try:
                self._nvml.nvmlInit()
                count = self._nvml.nvmlDeviceGetCount()
                self.handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
                if not self.handles:
                    self.reason = "NVML sees no GPU"
            except Exception as exc:
                self.reason = f"NVML unavailable ({type(exc).__name__}: {exc})"
        if self.reason:
            LOG.info("GPU sampler off: %s; system_samples get no GPU rows", self.reason)

    @property
    def active(self) -> bool:
        """Whether there is a GPU to sample."""
        return bool(self.handles)

    def _read(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:  # one unsupported counter (e.g. power on some boards) stays NULL
            return None

    def sample(self) -> list[dict[str, Any]]:
        """One ``system_samples`` row per GPU (column names of the table)."""
        if not self.handles:
            return []
        nv = self._nvml
        now = time.time_ns() // 1000
        rss = self._read(lambda: self._process.memory_info().rss) or 0
        rows = []
        for index, handle in enumerate(self.handles):
            util = self._read(lambda h=handle: nv.nvmlDeviceGetUtilizationRates(h))
            mem = self._read(lambda h=handle: nv.nvmlDeviceGetMemoryInfo(h))
            power_mw = self._read(lambda h=handle: nv.nvmlDeviceGetPowerUsage(h))
            temp = self._read(lambda h=handle: nv.nvmlDeviceGetTemperature(h, 0))  # 0: GPU die
            rows.append(
                {
                    "ts": now,
                    "host": self.host,
                    "pid": os.getpid(),
                    "source": "gpu",
                    "cpu_percent": 0.0,
                    "rss_bytes": int(rss),
                    "gpu_index": index,
                    "gpu_util": None if util is None else float(util.gpu),
                    "gpu_mem_used": None if mem is None else int(mem.used),
                    "gpu_mem_total": None if mem is None else int(mem.total),
                    "power_w": None if power_mw is None else power_mw / 1000.0,
                    "temperature_c": None if temp is None else float(temp),
                }
            )
        return rows


def samples_table(rows: list[dict[str, Any]]) -> Any:
    """The rows as an Arrow table in the spool's ``system_samples`` layout."""
    import pyarrow as pa  # noqa: PLC0415 - only the sampler thread needs it

    schema = pa.schema(
        [
            ("ts", pa.timestamp("us", tz="UTC")),
            ("host", pa.string()),
            ("pid", pa.uint32()),
            ("source", pa.string()),
            ("cpu_percent", pa.float32()),
            ("rss_bytes", pa.uint64()),
            ("gpu_index", pa.uint8()),
            ("gpu_util", pa.float32()),
            ("gpu_mem_used", pa.uint64()),
            ("gpu_mem_total", pa.uint64()),
            ("power_w", pa.float32()),
            ("temperature_c", pa.float32()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


class SamplerThread:
    """Samples the GPUs about once a second and writes ``system_samples`` spool segments.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        sampler: The sampler (default: NVML); an inactive one makes this thread a no-op.
        interval_s: Seconds between samples.
        segment_every_s: Seconds of rows per spool segment.
    """

    def __init__(
        self,
        spool_dir: str | Path,
        sampler: DeviceSampler | None = None,
        interval_s: float = SAMPLE_INTERVAL_S,
        segment_every_s: float = SEGMENT_EVERY_S,
    ) -> None:
        self.sampler = sampler or DeviceSampler()
        self.spool_dir = Path(spool_dir)
        self.interval_s = interval_s
        self.segment_every_s = segment_every_s
        self.rows_written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stagelog-gpu-sampler", daemon=True)
        self._exporter: Any = None

    def start(self) -> SamplerThread:
        """Start sampling (returns at once; nothing runs without a GPU)."""
        if self.sampler.active:
            from logging_backend.spool_writer import SpoolExporter  # noqa: PLC0415

            self._exporter = SpoolExporter(self.spool_dir)
            self._thread.start()
        return self

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            self._exporter.write_segment("system_samples", samples_table(rows))
            self.rows_written += len(rows)
        except Exception:
            LOG.exception("GPU sampler: cannot write a system_samples segment to %s",
                          self.spool_dir)

    def _run(self) -> None:
        rows: list[dict[str, Any]] = []
        last_write = time.monotonic()
        while not self._stop.is_set():
            try:
                rows.extend(self.sampler.sample())
            except Exception:
                LOG.exception("GPU sampler: sample failed")
            if time.monotonic() - last_write >= self.segment_every_s:
                self._flush(rows)
                rows, last_write = [], time.monotonic()
            self._stop.wait(self.interval_s)
        self._flush(rows)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and write the rows not yet written."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
