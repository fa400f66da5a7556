"""Where the collector's CPU goes under load: CPU per request by thread name.

Starts a full-logging stack, drives it with ``bench.overhead``'s closed-loop clients and reads
the collector's threads' CPU times (``/proc/<pid>/task/<tid>/comm`` names: ClickHouse's
``MergeMutate``, ``ThreadPool``, ... and ``python``) at the start and end of the window.

Usage: ``python -m bench.collector_cpu [--flush-ms 1000] [--collect-ms 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
from pathlib import Path

import psutil

from bench.overhead import closed_loop, header
from loadtest.workload import EventSource
from logging_backend import config
from logging_backend.stack import launcher


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds and name of every thread of ``pid``."""
    out: dict[int, tuple[str, float]] = {}
    for thread in psutil.Process(pid).threads():
        try:
            name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
        except OSError:
            name = "?"
        out[thread.id] = (name, thread.user_time + thread.system_time)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the collector's CPU per request by thread name."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.collector_cpu", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--flush-ms", type=int, default=None)
    parser.add_argument("--collect-ms", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.collect_ms:
        os.environ[config.COLLECT_INTERVAL_MS] = str(args.collect_ms)
    with tempfile.TemporaryDirectory(prefix="stagelog-collector-cpu-") as tmp:
        home = Path(tmp)
        grpc_port, http_port, metrics_port = launcher.free_ports(3)
        settings = config.load(
            home=home, dsn=f"chdb://{home / 'clickhouse'}", grpc_port=grpc_port,
            http_port=http_port, metrics_port=metrics_port, logging=True, flush_ms=args.flush_ms,
        )  # fmt: skip
        try:
            stack = launcher.up(settings, timeout=300)
            snaps: list[dict[int, tuple[str, float]]] = []

            def probe() -> tuple[float, float]:
                snaps.append(thread_cpu(stack.collector_pid))
                return 0.0, 0.0

            load = asyncio.run(
                closed_loop(
                    stack.grpc_url, EventSource(3000, 3, 0.0), "collector-cpu",
                    args.concurrency, 8, 2.0, args.duration, probe,
                )
            )  # fmt: skip
        finally:
            launcher.down(settings)
    before, after = snaps
    by_name: collections.Counter[str] = collections.Counter()
    for tid, (name, cpu) in after.items():
        by_name[name] += cpu - before.get(tid, (name, 0.0))[1]
    answered = len(load.latencies_ms)
    print(header(argv, prog="bench.collector_cpu"))
    print(
        f"# {answered / load.window_s:.0f} req/s, {args.concurrency} in flight, batch 8; "
        f"STAGELOG_FLUSH_MS={settings.flush_ms}, "
        f"STAGELOG_COLLECT_INTERVAL_MS={args.collect_ms or 'default (1000)'}"
    )
    print(f"collector CPU ms per request: total {sum(by_name.values()) * 1000 / answered:.3f}")
    for name, cpu in by_name.most_common(8):
        print(f"  {name:<16} {cpu * 1000 / answered:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
