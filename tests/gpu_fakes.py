"""Fake CuPy and NVML modules for the GPU tests (the calls logging_backend.gpu makes)."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace


class FakeEvent:
    created = 0

    def __init__(self):
        FakeEvent.created += 1
        self.t = None
        self.synced = False

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        self.synced = True


class FakeCupy:
    """The few CuPy calls the probe makes, with a fixed GPU time per request."""

    def __init__(self, elapsed_ms=2.5, broken_device=False, pool_bytes=4096):
        self.used = []
        self.elapsed_ms = elapsed_ms
        fake = self
        FakeEvent.created = 0

        class Device:
            def __init__(self, i):
                if broken_device:
                    raise RuntimeError("cudaErrorNoDevice")
                self.i = i
                self.pci_bus_id = f"0000:{i:02d}:00.0"

            def use(self):
                fake.used.append(self.i)

        def get_elapsed_time(start, end):
            assert end.synced, "elapsed time read before the end event completed"
            return fake.elapsed_ms

        self.cuda = SimpleNamespace(Device=Device, Event=FakeEvent,
                                    get_elapsed_time=get_elapsed_time)
        self.get_default_memory_pool = lambda: SimpleNamespace(total_bytes=lambda: pool_bytes)


class FakeNvml:
    def __init__(self, count=1, pids=None, fail_init=False, power=True):
        self.count = count
        self.pids = pids if pids is not None else {os.getpid(): 123 << 20}
        self.fail_init = fail_init
        self.power = power
        self.bus_lookups = []

    def nvmlInit(self):
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("h", i)

    def nvmlDeviceGetHandleByPciBusId(self, bus):
        self.bus_lookups.append(bus)
        return ("h", int(bus.split(":")[1]))

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in self.pids.items()]

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=10 << 30, total=80 << 30, free=70 << 30)

    def nvmlDeviceGetPowerUsage(self, handle):
        if not self.power:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 312_500  # mW

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41


def write_gpu_spool(args_for, n_requests=5, elapsed_ms=1.25):
    """Spool what a GPU run writes: CPU stages, GPU members (fake CuPy), GPU samples (fake NVML).

    ``args_for(model)`` returns Triton initialize() args; STAGELOG_HOME must point at the home.
    Returns the spool directory.
    """
    import numpy as np

    from logging_backend import config
    from logging_backend.capture import gpu_probe
    from logging_backend.capture.stage import StageLog
    from logging_backend.collector import sampler as device_sampler

    spool = config.load().spool_dir
    logs = {}
    for model in ("preprocess", "features", "mlp", "forest", "logreg", "aggregate"):
        probe = None
        if model in ("mlp", "forest", "logreg"):
            probe = gpu_probe.GpuProbe.create("gpu", 0, cupy=FakeCupy(elapsed_ms), nvml=FakeNvml())
        logs[model] = (StageLog.from_triton_args(args_for(model), gpu=probe), probe)
    for i in range(n_requests):
        for model, (log, probe) in logs.items():
            with log.request(f"gpu-b1-{i:05d}", rows=2) as rec:
                rec.input("FEATURES", np.ones((2, 4), dtype=np.float32))
                if probe is not None:
                    rec.gpu_time(probe.stop(probe.start()))
                    rec.predictions(model=model, probs=np.full((2, 3), 1 / 3, np.float32))
    for log, _ in logs.values():
        log.close()
    sampler = device_sampler.SamplerThread(
        spool, device_sampler.DeviceSampler(nvml=FakeNvml()), interval_s=0.01, segment_every_s=0.05
    ).start()
    time.sleep(0.15)
    sampler.stop()
    return spool
