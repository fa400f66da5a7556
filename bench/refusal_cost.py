"""What recording refused requests costs a served request: the preload vs none vs verbose logs.

Issue 14: Triton 2.51 logs a request it refuses before a stage runs only at ``--log-verbose=1``.
Three stacks with logging off (``--no-logging``, no supervisor) run side by side on free ports:

- ``none``     ``STAGELOG_REFUSALS=off``: tritonserver as before issue 14's refusal work;
- ``preload``  the default: ``refusal_log.c`` preloaded (what `stagelog up` does now);
- ``verbose``  ``STAGELOG_REFUSALS=off`` plus ``--log-verbose=1`` (the alternative: Triton's
  own "Infer failed" line, which needs that level).

Load goes to one stack at a time, in rotated order, in windows of ``--duration`` seconds after
``--warmup``: ``--concurrency`` threads, each one valid one-row request in flight. Reported per
window: requests/s, server CPU ms per request (tritonserver and its stubs), and log lines and
bytes the server wrote per request; then the median per stack. At the end one refused request
(wrong datatype) goes to each stack, and whether its log recorded it is printed.

Usage::

    python -m bench.refusal_cost --repetitions 3 --duration 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from bench.overhead import _tree_cpu_s
from clients.score import score_batch
from logging_backend import config
from logging_backend.stack import launcher
from training.generator import generate

STACKS = {
    "none": ("off", []),
    "preload": ("on", []),
    "verbose": ("off", ["--log-verbose=1"]),
}


def _log_size(settings: config.Settings) -> tuple[int, int]:
    data = (settings.logs_dir / "tritonserver.log").read_bytes()
    return len(data), data.count(b"\n")


def _window(url: str, concurrency: int, seconds: float, events: list) -> int:
    stop = time.monotonic() + seconds
    counts = [0] * concurrency

    def one(worker: int) -> None:
        client = grpcclient.InferenceServerClient(url)
        i = 0
        while time.monotonic() < stop:
            score_batch(client, [events[(worker * 31 + i) % len(events)]], None)
            counts[worker] += 1
            i += 1
        client.close()

    threads = [threading.Thread(target=one, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def main() -> None:
    """Run the comparison and print every window and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    args = parser.parse_args()
    events = [item.event for item in generate(256, seed=14)]
    root = Path(tempfile.mkdtemp(prefix="refusal-cost-"))
    started: dict[str, tuple[config.Settings, launcher.Stack]] = {}
    print(f"# command: python -m bench.refusal_cost --repetitions {args.repetitions} "
          f"--concurrency {args.concurrency} --warmup {args.warmup} --duration {args.duration}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        for name, (refusals, extra) in STACKS.items():
            grpc_port, http_port, metrics_port = launcher.free_ports(3)
            settings = config.load(home=root / name, logging=False, grpc_port=grpc_port,
                                   http_port=http_port, metrics_port=metrics_port)
            os.environ[config.REFUSALS] = refusals
            try:
                stack = launcher.up(settings, extra_triton_args=extra, supervise=False,
                                    timeout=300)
            finally:
                os.environ.pop(config.REFUSALS, None)
            started[name] = (settings, stack)
        results: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in STACKS}
        names = list(STACKS)
        print("stack    rep   req/s  srv cpu ms/req  log lines/req  log bytes/req")
        for rep in range(args.repetitions):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                settings, stack = started[name]
                url = f"127.0.0.1:{settings.grpc_port}"
                _window(url, args.concurrency, args.warmup, events)
                cpu0, (bytes0, lines0) = _tree_cpu_s(stack.triton_pid), _log_size(settings)
                t0 = time.monotonic()
                done = _window(url, args.concurrency, args.duration, events)
                elapsed = time.monotonic() - t0
                cpu = _tree_cpu_s(stack.triton_pid) - cpu0
                bytes1, lines1 = _log_size(settings)
                row = (done / elapsed, 1000 * cpu / done, (lines1 - lines0) / done,
                       (bytes1 - bytes0) / done)
                results[name].append(row)
                print(f"{name:8} {rep:3} {row[0]:7.1f} {row[1]:15.3f} {row[2]:14.2f} "
                      f"{row[3]:14.1f}", flush=True)
        print("\n# median per stack")
        for name, rows in results.items():
            cols = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"{name:8} req/s {cols[0]:7.1f}  srv cpu ms/req {cols[1]:.3f}  "
                  f"log lines/req {cols[2]:.2f}  log bytes/req {cols[3]:.1f}")
        print("\n# one refused request (FP32 for RAW) to each stack: is it in a log?")
        for name, (settings, _) in started.items():
            tensor = grpcclient.InferInput("RAW", [1, 1], "FP32")
            tensor.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
            try:
                client.infer("pipeline", [tensor], request_id=f"probe-{name}")
            except InferenceServerException:
                pass
            client.close()
            time.sleep(0.5)
            found = [
                path.name for path in settings.logs_dir.glob("*.log")
                if f"probe-{name}".encode() in path.read_bytes()
            ]
            print(f"{name:8} recorded in: {', '.join(found) or 'nothing'}")
    finally:
        for settings, _ in started.values():
            launcher.down(settings)


if __name__ == "__main__":
    main()
