"""Median sequential gRPC latency of `pipeline`, batch 1, with logging on and off.

For each mode the benchmark starts its own stack (temporary STAGELOG_HOME, free ports), sends
warm-up requests, then several repetitions of sequential one-event requests, and prints every
repetition's median and p90 and the overall median and p90 (over all timed requests). Only one
request is in flight at a time; the time is the client's (``tritonclient.grpc`` ``infer``).

Usage::

    python -m bench.latency                       # logging on, then off
    python -m bench.latency --modes on --requests 300 --repetitions 3
    python -m bench.latency --out bench/out-latency.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from clients.score import score_batch
from logging_backend import config, launcher
from training.generator import generate


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(
    grpc_url: str, events: list[dict], warmup: int, requests: int, repetitions: int
) -> list[list[float]]:
    """Send warm-up requests, then ``repetitions`` x ``requests`` timed ones; return ms per rep."""
    client = grpcclient.InferenceServerClient(grpc_url)
    position = 0
    for _ in range(warmup):
        score_batch(client, [events[position]], request_id=f"warmup-{position}")
        position += 1
    runs: list[list[float]] = []
    for rep in range(repetitions):
        times: list[float] = []
        for _ in range(requests):
            event = events[position]
            started = time.perf_counter()
            score_batch(client, [event], request_id=f"bench-{rep}-{position}")
            times.append((time.perf_counter() - started) * 1000.0)
            position += 1
        runs.append(times)
    client.close()
    return runs


def run_mode(
    logging_on: bool, args: argparse.Namespace, events: list[dict], emit: Callable[[str], None]
) -> dict[str, float]:
    """Start a stack with logging on or off, measure, stop it; return the summary."""
    with tempfile.TemporaryDirectory(prefix="stagelog-bench-") as tmp:
        grpc_port, http_port, metrics_port = launcher.free_ports(3)
        settings = config.load(
            home=Path(tmp),
            dsn=f"chdb://{Path(tmp) / 'clickhouse'}",
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            logging=logging_on,
        )
        try:
            stack = launcher.up(settings, timeout=args.timeout)
            emit(
                f"\n## logging {'on' if logging_on else 'off'}: tritonserver "
                f"{stack.triton_version}, warm-up {args.warmup}, {args.repetitions} repetitions "
                f"x {args.requests} sequential requests of 1 event"
            )
            runs = measure(stack.grpc_url, events, args.warmup, args.requests, args.repetitions)
        finally:
            launcher.down(settings)
    for index, times in enumerate(runs, start=1):
        emit(
            f"rep {index}: median {statistics.median(times):.3f} ms, "
            f"p90 {np.percentile(times, 90):.3f} ms, min {min(times):.3f} ms, "
            f"max {max(times):.3f} ms"
        )
    every = [t for times in runs for t in times]
    summary = {
        "logging": "on" if logging_on else "off",
        "requests": len(every),
        "median_ms": round(statistics.median(every), 3),
        "p90_ms": round(float(np.percentile(every, 90)), 3),
        "median_of_rep_medians_ms": round(statistics.median(statistics.median(t) for t in runs), 3),
    }
    emit(
        f"overall: median {summary['median_ms']:.3f} ms, p90 {summary['p90_ms']:.3f} ms "
        f"over {summary['requests']} requests"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print (and optionally save) the raw output."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--modes", default="on,off", help="logging modes to run: on,off")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="repetitions per mode")
    parser.add_argument("--seed", type=int, default=5, help="generator seed of the events")
    parser.add_argument("--timeout", type=float, default=300.0, help="stack start-up timeout")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("on", "off") for m in modes):
        parser.error("--modes takes on, off or on,off")

    lines: list[str] = []

    def emit(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    emit("# bench/latency.py: sequential gRPC latency of `pipeline`, batch 1")
    emit(f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    emit(f"command: python -m bench.latency {' '.join(argv if argv is not None else sys.argv[1:])}")
    emit(f"machine: {_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    emit("load average at start (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    needed = args.warmup + args.requests * args.repetitions
    events = [item.event for item in generate(needed, args.seed)]
    summaries = [run_mode(mode == "on", args, events, emit) for mode in modes]
    emit("load average at end (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    emit("\nsummary: " + json.dumps(summaries))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
