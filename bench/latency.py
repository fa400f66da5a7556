"""Median sequential gRPC latency of `pipeline`, batch 1, with logging on and off.

The benchmark starts one stack per mode (temporary STAGELOG_HOME, free ports), both at once,
sends warm-up requests to each, then runs the timed repetitions interleaved (on, off, on, off,
...) so that both modes see the same background load. A repetition is ``--requests`` sequential
one-event requests (one in flight at a time), timed by the client around
``tritonclient.grpc`` ``infer``. It prints every repetition's median and p90, then per mode the
median and p90 over all timed requests.

Usage::

    python -m bench.latency                       # logging on and off
    python -m bench.latency --modes off --requests 300 --repetitions 3
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
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from bench.machine import cpu_model
from clients.score import score_batch
from logging_backend import config
from logging_backend.stack import launcher
from training.generator import generate


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_requests(
    client: grpcclient.InferenceServerClient, events: list[dict], tag: str
) -> list[float]:
    """Send one request per event, sequentially; return each round trip in ms."""
    times: list[float] = []
    for index, event in enumerate(events):
        started = time.perf_counter()
        score_batch(client, [event], request_id=f"{tag}-{index}")
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def start_stack(tmp: Path, logging_on: bool, timeout: float) -> tuple[config.Settings, str]:
    """Start a stack in ``tmp`` on free ports; return its settings and version."""
    grpc_port, http_port, metrics_port = launcher.free_ports(3)
    settings = config.load(
        home=tmp,
        dsn=f"chdb://{tmp / 'clickhouse'}",
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        logging=logging_on,
    )
    return settings, launcher.up(settings, timeout=timeout).triton_version


def summarize(mode: str, runs: list[list[float]], emit: Callable[[str], None]) -> dict:
    """Print per-repetition and overall numbers of one mode; return the overall ones."""
    emit(f"\n## logging {mode}")
    for index, times in enumerate(runs, start=1):
        emit(
            f"rep {index}: median {statistics.median(times):.3f} ms, "
            f"p90 {np.percentile(times, 90):.3f} ms, min {min(times):.3f} ms, "
            f"max {max(times):.3f} ms"
        )
    every = [t for times in runs for t in times]
    summary = {
        "logging": mode,
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
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per stack")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="repetitions per mode")
    parser.add_argument("--seed", type=int, default=5, help="generator seed of the events")
    parser.add_argument("--timeout", type=float, default=300.0, help="stack start-up timeout")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("on", "off") for m in modes) or len(set(modes)) != len(modes):
        parser.error("--modes takes on, off or on,off")

    lines: list[str] = []

    def emit(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    emit("# bench/latency.py: sequential gRPC latency of `pipeline`, batch 1")
    emit(f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    emit(f"command: python -m bench.latency {' '.join(argv if argv is not None else sys.argv[1:])}")
    emit(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    emit(f"load average at start (1/5/15 min): {_load()}")
    per_rep = args.requests
    # Each mode gets its own events (distinct event ids), so no request is a duplicate.
    needed = args.warmup + per_rep * args.repetitions
    events = [item.event for item in generate(needed * len(modes), args.seed)]

    with ExitStack() as cleanup:
        stacks: dict[str, tuple[grpcclient.InferenceServerClient, list[dict]]] = {}
        for index, mode in enumerate(modes):
            tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="stagelog-bench-")))
            settings, version = start_stack(tmp, mode == "on", args.timeout)
            cleanup.callback(launcher.down, settings)
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
            cleanup.callback(client.close)
            own = events[index * needed : (index + 1) * needed]
            emit(f"logging {mode}: tritonserver {version}, warm-up {args.warmup} requests")
            timed_requests(client, own[: args.warmup], f"warmup-{mode}")
            stacks[mode] = (client, own[args.warmup :])
        emit(
            f"timed: {args.repetitions} repetitions x {per_rep} sequential requests of 1 event "
            f"per mode, interleaved ({', '.join(modes)}, ...)"
        )
        runs: dict[str, list[list[float]]] = {mode: [] for mode in modes}
        for rep in range(args.repetitions):
            for mode in modes:
                client, own = stacks[mode]
                chunk = own[rep * per_rep : (rep + 1) * per_rep]
                runs[mode].append(timed_requests(client, chunk, f"bench-{mode}-{rep}"))
    summaries = [summarize(mode, runs[mode], emit) for mode in modes]
    emit(f"\nload average at end (1/5/15 min): {_load()}")
    emit("summary: " + json.dumps(summaries))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
