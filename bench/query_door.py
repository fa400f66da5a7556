"""The query door under pressure: shipping while a long query runs, memory while a result streams.

A real collector (child process, real chDB, no Triton) on a temporary home. Measured:

1. shipping lag: a segment is written to the spool, then the time until its row is queryable
   through the door, ``--batches`` times with the door idle and ``--batches`` times while a
   20 s reader query (``max_execution_time = 20``) runs on the same store;
2. the collector's RSS (sampled every 50 ms) while a ~520 MB TSV result streams through the door
   to a client that reads it at full speed, and the result size.

Run: ``.venv/bin/python -m bench.query_door [--batches 10] [--out bench/results/i13/...]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psutil
import pyarrow as pa

from bench.machine import cpu_model
from logging_backend.spool import layout

REPO = Path(__file__).resolve().parents[1]
LONG_SQL = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1"
BIG_SQL = "SELECT number, repeat('x', 100) FROM numbers(5000000)"


def _segment(spool: Path, request_id: str) -> None:
    layout.write_table_segment(spool, "stage_events", pa.table({
        "ts": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
        "request_id": [request_id], "stage": ["preprocess"], "model_name": ["preprocess"],
        "wall_ms": [1.0], "cpu_ms": [0.5], "rss_bytes": pa.array([1], pa.uint64()),
    }))


class Door:
    """The collector's door, as a client sees it."""

    def __init__(self, info: dict) -> None:
        self.url = info["http_url"]
        self.headers = {"X-ClickHouse-User": info["user"],
                        "X-ClickHouse-Key": Path(info["password_file"]).read_text().strip()}

    def open(self, sql: str, **params: str):
        """GET ``sql`` with ``params`` (``param_*`` and settings) as the door's user."""
        query = urllib.parse.urlencode({"query": sql, **params})
        request = urllib.request.Request(f"{self.url}/?{query}", headers=self.headers)
        return urllib.request.urlopen(request, timeout=600)  # noqa: S310 - local door

    def count(self, request_id: str) -> int:
        """Rows of ``request_id`` in stage_events."""
        with self.open("SELECT count() FROM stagelog.stage_events WHERE request_id = "
                       "{rid:String}", param_rid=request_id) as response:
            return int(response.read())


def _lags(door: Door, spool: Path, batches: int) -> list[float]:
    lags = []
    for _ in range(batches):
        request_id = str(uuid.uuid4())
        written = time.monotonic()
        _segment(spool, request_id)
        while door.count(request_id) == 0:
            time.sleep(0.02)
        lags.append(time.monotonic() - written)
    return lags


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print (and write) the raw numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = [f"# bench.query_door on {cpu_model()} ({os.cpu_count()} CPUs), "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')}"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = dict(os.environ, STAGELOG_HOME=str(home), STAGELOG_COLLECT_INTERVAL_MS="100",
                   PYTHONPATH=str(REPO))
        env.pop("STAGELOG_DSN", None)
        log = open(home / "collector.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            info_path = home / "run" / "collector.json"
            while not info_path.exists():
                assert proc.poll() is None, (home / "collector.log").read_text()
                time.sleep(0.05)
            door = Door(json.loads(info_path.read_text()))
            spool = home / "spool"
            _lags(door, spool, 2)  # warm-up
            idle = _lags(door, spool, args.batches)
            outcome: dict[str, object] = {}

            def long_query() -> None:
                started = time.monotonic()
                try:
                    door.open(LONG_SQL, max_execution_time="20").read()
                    outcome["status"] = 200
                except urllib.error.HTTPError as exc:
                    outcome["status"] = exc.code
                outcome["elapsed"] = time.monotonic() - started

            thread = threading.Thread(target=long_query)
            thread.start()
            time.sleep(1.0)
            busy = _lags(door, spool, args.batches)
            during = thread.is_alive()
            thread.join()
            lines.append(f"shipping lag, segment written -> row queryable, door idle: "
                         f"median {statistics.median(idle):.3f} s, max {max(idle):.3f} s "
                         f"({args.batches} batches)")
            lines.append(f"shipping lag during a 20 s reader query: median "
                         f"{statistics.median(busy):.3f} s, max {max(busy):.3f} s "
                         f"({args.batches} batches, all while the query ran: {during}); the "
                         f"query ended with HTTP {outcome['status']} after "
                         f"{outcome['elapsed']:.1f} s")
            lines.append("raw idle lags: " + " ".join(f"{x:.3f}" for x in idle))
            lines.append("raw busy lags: " + " ".join(f"{x:.3f}" for x in busy))

            collector = psutil.Process(proc.pid)
            before = collector.memory_info().rss
            peak = before
            received = 0
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.wait(0.05):
                    peak = max(peak, collector.memory_info().rss)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            with door.open(BIG_SQL) as response:
                while chunk := response.read(1 << 20):
                    received += len(chunk)
            elapsed = time.monotonic() - started
            stop.set()
            sampler.join()
            lines.append(f"streamed result: {received / 1e6:.0f} MB in {elapsed:.1f} s; "
                         f"collector RSS {before / 1e6:.0f} MB before, peak "
                         f"{peak / 1e6:.0f} MB (+{(peak - before) / 1e6:.0f} MB)")
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
