"""Request-path cost of the CUDA-event stage timing (``logging_backend.gpu.GpuProbe``).

Times ``probe.stop(probe.start())`` — what a GPU stage adds per request — and, separately,
``PendingGpuTime.resolve()``, which the flush thread pays. On a machine without a GPU it
measures the CPU probe (the no-op a CPU stage pays). Prints one JSON line.

Usage: ``python -m bench.gpu_probe [--device cpu|gpu] [-n 20000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from logging_backend.capture.gpu_probe import GpuProbe


def measure(device: str = "gpu", n: int = 20000) -> dict[str, Any]:
    """Mean and p99 µs of start+stop on the request path, and of resolve in the flush thread."""
    probe = GpuProbe.create(device, 0)
    pending = []
    path_us = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        timing = probe.stop(probe.start())
        path_us.append((time.perf_counter_ns() - t0) / 1000)
        pending.append(timing)
        if len(pending) >= 256:  # the flush thread's batches; events go back to the pool
            for p in pending:
                if p is not None:
                    p.resolve()
            pending.clear()
    resolve_us = []
    for _ in range(min(n, 2000)):
        timing = probe.stop(probe.start())
        t0 = time.perf_counter_ns()
        if timing is not None:
            timing.resolve()
        resolve_us.append((time.perf_counter_ns() - t0) / 1000)
    path_us.sort()
    resolve_us.sort()
    return {
        "device": probe.device,
        "fallback_reason": probe.reason,
        "n": n,
        "request_path_us_mean": round(sum(path_us) / n, 3),
        "request_path_us_p99": round(path_us[int(0.99 * (n - 1))], 3),
        "flush_resolve_us_mean": round(sum(resolve_us) / len(resolve_us), 3),
        "memory_bytes": probe.memory_bytes(),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="gpu")
    parser.add_argument("-n", type=int, default=20000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.device, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
