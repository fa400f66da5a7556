"""Whole-GPU telemetry for ``system_samples``: NVML utilisation, memory, power, temperature.

Runs in the collector (one per host). Without NVML or without a GPU, :class:`DeviceSampler`
is inactive and :class:`SamplerThread` does nothing. Rows go to the spool like every other
table (:mod:`logging_backend.spool.layout`) and are shipped by the collector's loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa

from logging_backend.spool import layout
from logging_backend.spool.schemas import SCHEMAS

LOG = logging.getLogger("stagelog.gpu")

SAMPLE_INTERVAL_S = 1.0  # one system_samples row per GPU about once a second
SEGMENT_EVERY_S = 10.0  # rows are written to the spool in one segment per this many seconds

def _import_nvml() -> ModuleType | None:
    try:
        import pynvml  # noqa: PLC0415 - nvidia-ml-py; the library itself may be missing
    except Exception:
        return None
    return pynvml





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


def samples_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an Arrow table in the spool's ``system_samples`` layout."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS["system_samples"])


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

    def start(self) -> SamplerThread:
        """Start sampling (returns at once; nothing runs without a GPU)."""
        if self.sampler.active:
            self._thread.start()
        return self

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            layout.write_table_segment(self.spool_dir, "system_samples", samples_table(rows))
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
