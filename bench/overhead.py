"""What logging every arrow costs at load: throughput and latency of `pipeline` per logging mode.

Modes, all on the same machine and the same models (the repository's model_repository):

- ``off``      (a) ``stagelog up --no-logging``: the stages use the null logger, no collector.
- ``full``     (b) full logging: every tensor, event and prediction, shipped by the collector.
- ``tuned``    (b') full logging with the flush and collect periods of before issue 11:
  ``STAGELOG_FLUSH_MS=100`` and ``STAGELOG_COLLECT_INTERVAL_MS=500`` (defaults now 1000 and
  2000).
- ``half``     (b*) full logging with ``STAGELOG_FLUSH_MS=500``: freshness vs flush period.
- ``second``   (b+) full logging with ``STAGELOG_FLUSH_MS=1000`` (now the default).
- ``collect1`` (b1) full logging with ``STAGELOG_COLLECT_INTERVAL_MS=1000`` (the default is 2000:
  half the inserts).
- ``spool``    (b'') full logging with the store on another host: the stages log and spool as in
  ``full``, but the collector is paused (SIGSTOP) during the window and resumed for the drain,
  so the window pays for the stages' logging and not for the embedded ClickHouse engine's
  inserts and merges (work a ClickHouse server does on its own host; shipping Arrow segments
  to it over HTTP is left out too).
- ``sampled``  (c) the stages' ``logging_policy`` set to ``sampled`` (``--sample-rate``, 0.1 by
  default): events and predictions always, tensors for that share of requests. Served from a
  copy of the repository whose stage configs carry the policy parameters (nothing else differs).
- ``summary``  (c') ``logging_policy`` ``summary``: per-tensor statistics instead of values.
- ``trace``    (d) logging off plus Triton's own tracing, ``--trace-config level=TENSORS
  --trace-config rate=1``, written to a file under the run's home every ``--trace-log-frequency``
  traces (Triton's default, 0, would keep every trace in memory until shutdown).

All stacks run side by side for the whole benchmark (one temporary STAGELOG_HOME and free ports
each); load goes to one at a time, in short windows, in rotated order (repetition r starts at
mode r), so that whatever else the machine does spreads over all modes alike. One window:
``--warmup`` seconds of load, then ``--duration`` measured seconds of closed-loop load from
``--concurrency`` asyncio clients (``tritonclient.grpc.aio``, one request in flight each,
``--batch-size`` events per request, fresh event ids as in the load test). Reported per window:
throughput (requests answered in the window / window), p50/p99 latency of those requests, CPU
seconds of the server (Triton + stubs) and of the collector per request. With logging on, once
the load stops, the store is polled until every request of the window (warm-up included) has
its 6 ``stage_events`` rows and ``batch x 4`` ``predictions`` rows: rows lost = expected - found
after ``--drain-timeout`` seconds (must be 0). The next window starts only then, so no window
pays for another's shipping. With tracing on, the growth of the trace files is reported, and the
summary says what issue 11's 1.25x of the trace asks of full / off at each level (1.25 x trace /
off: at a level where the trace costs 20 % or less, logging off's own throughput or more).
Freshness (logging modes whose collector runs during the window), for every request answered
in the window: the store stamps each ``stage_events``, ``predictions`` and ``stage_tensors``
row with the time of its insert (``stored_at``, migrations 0073, 0093, 0094); freshness = the
latest of a request's rows - its response (both clocks this machine's), read once, after the
drain, so measuring it
puts no load on the stack. Reported as p50/p99 over every such request of a mode and level. The
old way stays as a cross-check: ``--fresh-every S`` makes one answered request every S seconds
a probe, polled through the collector's query endpoint every ``--fresh-poll`` seconds until its
rows are queryable (``poll p50/p99``; each poll costs the collector ~20 ms of CPU, so it is off
by default). Logging CPU per request and per event is the
server's (stages') CPU per request minus that of mode ``off`` in the same level, and the
collector's separately. The stages' flush threads (OS thread name ``sl-flush-…``) are also
summed on their own (``flush cpu ms/req``): a direct figure, not a difference of two noisy
totals, so it moves far less from window to window.
Several ``--concurrency`` levels may be given; each is its own table.

The summary gives, per concurrency and mode, the median over repetitions and the ratio to mode
``off`` at that concurrency.

Usage::

    python -m bench.overhead                # off, full, tuned, spool, sampled, trace; 7 reps
    python -m bench.overhead --modes off,full --repetitions 5 --concurrency 8,32
    python -m bench.overhead --out bench/results/overhead.txt --json bench/results/overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import lzma
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from bench.machine import cpu_model
from loadtest.workload import EventSource, raw_tensor
from logging_backend import config
from logging_backend.capture.batch import OS_THREAD_PREFIX
from logging_backend.config import REPO_ROOT
from logging_backend.stack import launcher, query

MODEL = "pipeline"
OUTPUTS = ("REQUEST_ID", "PROBABILITIES", "DECISION")
STAGES = 6  # preprocess, features, mlp, forest, logreg, aggregate: one stage_events row each
PREDICTION_MODELS = 4  # mlp, forest, logreg, aggregate: one predictions row per batch row each
POLICY_STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
BASELINE = "off"


@dataclass(frozen=True)
class Mode:
    """One way of serving the same models."""

    name: str
    label: str
    logging: bool
    policy: str | None = None  # stage logging_policy other than the configs' own
    trace: bool = False
    flush_ms: int | None = None  # STAGELOG_FLUSH_MS (None: --flush-ms, else the default)
    collect_ms: int | None = None  # STAGELOG_COLLECT_INTERVAL_MS (None: the default)
    offset_ms: int | None = None  # STAGELOG_COLLECT_OFFSET_MS (None: the default)
    pause_collector: bool = False  # SIGSTOP the collector during the window, SIGCONT after
    collector_nice: int | None = None  # every thread of the collector reniced to this after start
    env: tuple[tuple[str, str], ...] = ()  # more STAGELOG_* settings of this stack alone


MODES: dict[str, Mode] = {
    "off": Mode("off", "(a) logging off (--no-logging)", logging=False),
    "full": Mode("full", "(b) full logging", logging=True),
    "tuned": Mode(
        "tuned",
        "(b') full logging, flush 0.1 s, collect 0.5 s",
        logging=True,
        flush_ms=100,
        collect_ms=500,
    ),  # fmt: skip
    "half": Mode(
        "half", "(b*) full logging, flush 0.5 s", logging=True, flush_ms=500, collect_ms=1000
    ),
    "second": Mode("second", "(b+) full logging, flush 1 s", logging=True, flush_ms=1000),
    "collect1": Mode(
        "collect1", "(b1) full logging, collect every 1 s", logging=True, collect_ms=1000
    ),
    "offset250": Mode(
        "offset250", "(b4) full logging, collect 0.25 s after the tick", logging=True,
        offset_ms=250,
    ),
    "spool": Mode(
        "spool", "(b'') full logging, store elsewhere", logging=True, pause_collector=True
    ),
    "nice": Mode(
        "nice", "(b-) full logging, collector at nice 10", logging=True, collector_nice=10
    ),
    "nogcroom": Mode(
        "nogcroom",
        "(b0) full logging, no gc room (GC_ROOM off)",
        logging=True,
        env=((config.GC_ROOM, "off"),),
    ),  # fmt: skip
    "sampled": Mode("sampled", "(c) sampled policy", logging=True, policy="sampled"),
    "summary": Mode("summary", "(c') summary policy", logging=True, policy="summary"),
    "trace": Mode("trace", "(d) off + Triton trace TENSORS rate=1", logging=False, trace=True),
}
# issue 11: full logging >= 1.25x the throughput of Triton's TENSORS trace (the summary says
# what that asks of full / off at each level)
TRACE_TARGET = 1.25
DEFAULT_MODES = ("off", "full", "spool", "sampled", "trace")


# ----------------------------------------------------------------------------- the stacks


def policy_repository(src: Path, dst: Path, policy: str, sample_rate: float) -> Path:
    """Copy ``src`` to ``dst`` with every pipeline stage's ``logging_policy`` set to ``policy``.

    Any ``logging_policy``/``sample_rate``/``logging_reason`` parameters already in a stage's
    config are replaced; everything else (code, artifacts, other parameters) is copied as is.
    """
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    own = re.compile(r'^\s*parameters:\s*\{\s*key:\s*"(logging_policy|sample_rate|logging_reason)"')
    for stage in POLICY_STAGES:
        path = dst / stage / "config.pbtxt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: stage {stage!r} missing from the model repository")
        lines = [line for line in path.read_text().splitlines() if not own.match(line)]
        params = {"logging_policy": policy, "logging_reason": "bench.overhead: policy cost"}
        if policy == "sampled":
            params["sample_rate"] = f"{sample_rate:g}"
        for key, value in params.items():
            lines.append(f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
        path.write_text("\n".join(lines) + "\n")
    return dst


def trace_args(trace_dir: Path, log_frequency: int) -> list[str]:
    """Triton's own tensor tracing for every request, written under ``trace_dir``."""
    return [
        f"--trace-config=triton,file={trace_dir / 'trace.json'}",
        f"--trace-config=triton,log-frequency={log_frequency}",
        "--trace-config=level=TENSORS",
        "--trace-config=rate=1",
    ]


def _tree(pid: int | None) -> list[psutil.Process]:
    """A process and its live children (none when it is gone)."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _tree_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process and its live children (0 when gone)."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _flush_threads_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of the stage flush threads (OS name ``sl-flush-…``) under pid."""
    total = 0.0
    for proc in _tree(pid):
        try:
            threads = proc.threads()
        except psutil.NoSuchProcess:
            continue
        for thread in threads:
            try:
                name = Path(f"/proc/{proc.pid}/task/{thread.id}/comm").read_text()
            except OSError:
                continue
            if name.startswith(OS_THREAD_PREFIX):
                total += thread.user_time + thread.system_time
    return total


# ----------------------------------------------------------------------------- the load


@dataclass
class LoadResult:
    """What the clients saw in one run."""

    sent_ok: int = 0  # answered requests, warm-up included (each must leave its rows)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    window_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # answered inside the window
    server_cpu_s: float = 0.0
    collector_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    flush_cpu_s: float = 0.0  # the stages' flush threads (part of server_cpu_s)
    answered_at: dict[str, float] = field(default_factory=dict)  # window's ids -> time.time()


class FreshnessProbe:
    """Polls the store for probed requests; records when all their rows are queryable.

    Args:
        settings: The stack's settings (its collector's query endpoint).
        expected: (stage_events rows, predictions rows) of one request.
        poll_s: Seconds between polls.
    """

    def __init__(self, settings: config.Settings, expected: tuple[int, int], poll_s: float):
        import threading  # noqa: PLC0415

        self.settings = settings
        self.expected = expected
        self.poll_s = poll_s
        self.pending: dict[str, float] = {}  # request id -> response time (time.time())
        self.fresh: list[float] = []
        self.probes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="freshness", daemon=True)
        self._thread.start()

    def add(self, request_id: str, answered_at: float) -> None:
        """Probe one answered request."""
        with self._lock:
            self.pending[request_id] = answered_at
            self.probes += 1

    def _poll(self) -> None:
        with self._lock:
            ids = list(self.pending)
        if not ids:
            return
        sql = (
            "SELECT request_id FROM (SELECT request_id, count() AS n FROM stagelog.stage_events"
            " WHERE request_id IN {ids:Array(String)} GROUP BY request_id) AS e"
            " INNER JOIN (SELECT request_id, count() AS n FROM stagelog.predictions"
            " WHERE request_id IN {ids:Array(String)} GROUP BY request_id) AS p USING request_id"
            " WHERE e.n >= {ne:UInt32} AND p.n >= {np:UInt32}"
        )
        params = {"ids": ids, "ne": self.expected[0], "np": self.expected[1]}
        try:
            data = json.loads(query.execute(self.settings, sql, params, "JSONCompact"))["data"]
        except Exception:  # a failed poll is retried at the next one
            return
        now = time.time()
        with self._lock:
            for (request_id,) in data:
                answered = self.pending.pop(request_id, None)
                if answered is not None:
                    self.fresh.append(now - answered)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll()

    def finish(self, timeout_s: float) -> tuple[list[float], int]:
        """Wait until every probe was seen or ``timeout_s`` passed; (freshness list, probes)."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(self.poll_s)
        self._stop.set()
        self._thread.join(5.0)
        return list(self.fresh), self.probes


async def closed_loop(
    url: str,
    source: EventSource,
    prefix: str,
    concurrency: int,
    batch_size: int,
    warmup_s: float,
    duration_s: float,
    cpu_probe: Callable[[], tuple[float, float]],
    fresh: FreshnessProbe | None = None,
    fresh_every_s: float = 0.5,
    flush_probe: Callable[[], float] | None = None,
) -> LoadResult:
    """Run ``concurrency`` clients back to back; measure the window after the warm-up.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint.
        source: Where the batches come from.
        prefix: Request ids are ``<prefix>-<n>``.
        concurrency: Requests in flight at any time.
        batch_size: Events per request.
        warmup_s: Load before the window opens.
        duration_s: Length of the measured window.
        cpu_probe: Returns (server CPU s, collector CPU s) so far.
        fresh: Gets one answered request every ``fresh_every_s`` seconds as a probe.
        fresh_every_s: Seconds between freshness probes.
        flush_probe: Returns the stages' flush threads' CPU s so far (optional).
    """
    client = grpcaio.InferenceServerClient(url)
    result = LoadResult()
    outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
    clock = time.perf_counter
    opens = clock() + warmup_s
    closes = opens + duration_s
    counter = 0
    next_probe = clock()

    async def one_client() -> None:
        nonlocal counter, next_probe
        while clock() < closes:
            counter += 1
            request_id = f"{prefix}-{counter}"
            rows, _ = source.batch(request_id, batch_size)
            started = clock()
            try:
                await client.infer(
                    MODEL, [raw_tensor(rows)], outputs=outputs, request_id=request_id,
                    client_timeout=60.0,
                )  # fmt: skip
            except InferenceServerException as exc:
                result.errors += 1
                if len(result.error_examples) < 5:
                    result.error_examples.append(f"{exc.status()}: {exc.message()}")
                continue
            done = clock()
            result.sent_ok += 1
            now = time.time()
            if fresh is not None and done >= next_probe:
                next_probe = done + fresh_every_s
                fresh.add(request_id, now)
            if opens <= done <= closes:
                result.latencies_ms.append((done - started) * 1000.0)
                result.answered_at[request_id] = now

    def flushes() -> float:
        return flush_probe() if flush_probe is not None else 0.0

    async def window() -> tuple[float, float, float, float]:
        await asyncio.sleep(max(0.0, opens - clock()))
        server0, collector0 = cpu_probe()
        flush0, client0 = flushes(), time.process_time()
        await asyncio.sleep(max(0.0, closes - clock()))
        server1, collector1 = cpu_probe()
        return (server1 - server0, collector1 - collector0, time.process_time() - client0,
                flushes() - flush0)  # fmt: skip

    cpu = asyncio.create_task(window())
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    (result.server_cpu_s, result.collector_cpu_s, result.client_cpu_s,
     result.flush_cpu_s) = await cpu  # fmt: skip
    result.window_s = duration_s
    await client.close()
    return result


_MINE = "WHERE startsWith(request_id, {p:String})"  # a window's rows: its request id prefix


def count_rows(settings: config.Settings, prefix: str) -> tuple[int, int]:
    """(stage_events rows, predictions rows) whose request id starts with ``prefix``."""
    mine = _MINE
    sql = (
        f"SELECT (SELECT count() FROM stagelog.stage_events {mine}),"
        f" (SELECT count() FROM stagelog.predictions {mine})"
    )
    data = json.loads(query.execute(settings, sql, {"p": prefix}, "JSONCompact"))["data"]
    return int(data[0][0]), int(data[0][1])


def stored_freshness(
    settings: config.Settings, prefix: str, answered_at: dict[str, float]
) -> list[float]:
    """Seconds from each answered request's response to its last row's ``stored_at``.

    One query for the whole window, after the drain: requests with no row at all are left out
    (they are counted as lost rows instead).
    """
    if not answered_at:
        return []
    mine = _MINE
    sql = (
        "SELECT request_id, max(toUnixTimestamp64Micro(stored_at)) FROM ("
        f"SELECT request_id, stored_at FROM stagelog.stage_events {mine}"
        f" UNION ALL SELECT request_id, stored_at FROM stagelog.predictions {mine}"
        f" UNION ALL SELECT request_id, stored_at FROM stagelog.stage_tensors {mine}"
        ") GROUP BY request_id"
    )
    data = json.loads(query.execute(settings, sql, {"p": prefix}, "JSONCompact"))["data"]
    out = []
    for request_id, stored_us in data:
        answered = answered_at.get(request_id)
        if answered is not None:
            out.append(round(int(stored_us) / 1e6 - answered, 4))
    return out


def drain(
    settings: config.Settings, prefix: str, expected: tuple[int, int], timeout_s: float
) -> tuple[tuple[int, int], float]:
    """Poll the store until ``expected`` rows are there or ``timeout_s`` passes."""
    started = time.monotonic()
    found = (0, 0)
    while True:
        found = count_rows(settings, prefix)
        if found[0] >= expected[0] and found[1] >= expected[1]:
            break
        if time.monotonic() - started > timeout_s:
            break
        time.sleep(0.5)
    return found, time.monotonic() - started


# ----------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One measured window of one mode."""

    mode: str
    concurrency: int
    repetition: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu_ms_per_req: float
    collector_cpu_ms_per_req: float
    client_cpu_ms_per_req: float
    sent_ok: int
    flush_cpu_ms_per_req: float = float("nan")
    rows_expected: int | None = None
    rows_found: int | None = None
    rows_lost: int | None = None
    rows_duplicated: int | None = None
    drain_s: float | None = None
    trace_bytes: int | None = None
    server_died: bool = False
    error_examples: list[str] = field(default_factory=list)
    freshness_s: list[float] = field(default_factory=list)  # response -> stored_at, every request
    poll_freshness_s: list[float] = field(default_factory=list)  # response -> seen by a poll
    probes: int = 0  # requests probed by polling (probes - len(poll_freshness_s): not seen)

    @property
    def valid(self) -> bool:
        """Whether the window counts for the medians: no errors, the server alive at its end."""
        return self.errors == 0 and not self.server_died


@dataclass
class ModeStack:
    """A running stack serving one mode."""

    mode: Mode
    settings: config.Settings
    stack: launcher.Stack
    trace_dir: Path
    startup_s: float

    def cpu_probe(self) -> tuple[float, float]:
        """CPU seconds so far of (Triton + stubs, collector)."""
        return _tree_cpu_s(self.stack.triton_pid), _tree_cpu_s(self.stack.collector_pid)

    def flush_cpu(self) -> float:
        """CPU seconds so far of the stages' flush threads."""
        return _flush_threads_cpu_s(self.stack.triton_pid)

    def alive(self) -> bool:
        """Whether Triton still answers."""
        return launcher.grpc_ready(self.settings.grpc_port, model=None)

    def crash_report(self) -> str:
        """The server log's last lines from the first ``Signal`` on (or its last 5 lines)."""
        tail = launcher.log_tail(self.settings.logs_dir / f"{launcher.TRITON}.log", 60)
        lines = tail.splitlines()
        first = next((i for i, line in enumerate(lines) if "Signal (" in line), None)
        return "\n".join(lines[first : first + 8] if first is not None else lines[-5:])

    def trace_bytes(self) -> int:
        """Bytes in the trace files so far."""
        return sum(p.stat().st_size for p in self.trace_dir.rglob("*") if p.is_file())


def start(mode: Mode, home: Path, args: argparse.Namespace) -> ModeStack:
    """Start the stack of ``mode`` in ``home`` (callers must `launcher.down` its settings)."""
    grpc_port, http_port, metrics_port = launcher.free_ports(3)
    settings = config.load(
        home=home,
        dsn=f"chdb://{home / 'clickhouse'}",
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        logging=mode.logging,
        flush_ms=mode.flush_ms or args.flush_ms,
    )
    repository = Path(args.model_repository)
    if mode.policy:
        repository = policy_repository(
            repository, home / "model_repository", mode.policy, args.sample_rate
        )
    trace_dir = home / "trace"
    trace_dir.mkdir(parents=True, exist_ok=True)
    extra = trace_args(trace_dir, args.trace_log_frequency) if mode.trace else []
    started = time.monotonic()
    # The launcher hands its environment to the collector; only this stack's gets the override.
    overridden = (config.COLLECT_INTERVAL_MS, config.COLLECT_OFFSET_MS, *(k for k, _ in mode.env))
    saved = {v: os.environ.get(v) for v in overridden}
    os.environ.update(dict(mode.env))
    if mode.collect_ms:
        os.environ[config.COLLECT_INTERVAL_MS] = str(mode.collect_ms)
    if mode.offset_ms is not None:
        os.environ[config.COLLECT_OFFSET_MS] = str(mode.offset_ms)
    try:
        # No supervisor: a mode whose server crashes (Triton's trace) must stay crashed, and
        # its probes would be load the other modes do not have.
        stack = launcher.up(
            settings, model_repository=repository, timeout=args.startup_timeout,
            extra_triton_args=extra, supervise=False,
        )  # fmt: skip
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    if mode.collector_nice is not None and stack.collector_pid:
        renice(stack.collector_pid, mode.collector_nice)
    return ModeStack(mode, settings, stack, trace_dir, time.monotonic() - started)


def renice(pid: int, nice: int) -> None:
    """Set the nice value of every thread of ``pid`` (Linux: nice is per thread)."""
    for thread in psutil.Process(pid).threads():
        try:
            os.setpriority(os.PRIO_PROCESS, thread.id, nice)
        except (ProcessLookupError, PermissionError):
            pass


def measure(
    target: ModeStack,
    concurrency: int,
    repetition: int,
    args: argparse.Namespace,
    source: EventSource,
) -> Run:
    """Load one stack for one window; with logging on, wait until its rows are stored."""
    mode = target.mode
    prefix = f"bench-{mode.name}-c{concurrency}-r{repetition}-{os.getpid()}"
    trace0 = target.trace_bytes() if mode.trace else 0
    collector = None
    fresh = None
    if mode.logging and not mode.pause_collector and args.fresh_every > 0:
        expected_one = (STAGES, args.batch_size * PREDICTION_MODELS)
        fresh = FreshnessProbe(target.settings, expected_one, args.fresh_poll)
    if mode.pause_collector and target.stack.collector_pid:
        collector = psutil.Process(target.stack.collector_pid)
        collector.suspend()
    try:
        load = asyncio.run(
            closed_loop(
                target.stack.grpc_url, source, prefix, concurrency, args.batch_size,
                args.warmup, args.duration, target.cpu_probe, fresh, args.fresh_every,
                target.flush_cpu,
            )
        )  # fmt: skip
    finally:
        if collector is not None:
            collector.resume()
    answered = len(load.latencies_ms)
    lat = np.array(load.latencies_ms) if answered else np.array([float("nan")])
    per_req = 1000.0 / answered if answered else float("nan")
    run = Run(
        mode=mode.name,
        concurrency=concurrency,
        repetition=repetition,
        throughput_rps=answered / load.window_s,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        requests=answered,
        errors=load.errors,
        server_cpu_ms_per_req=load.server_cpu_s * per_req,
        collector_cpu_ms_per_req=load.collector_cpu_s * per_req,
        client_cpu_ms_per_req=load.client_cpu_s * per_req,
        flush_cpu_ms_per_req=load.flush_cpu_s * per_req,
        sent_ok=load.sent_ok,
        error_examples=load.error_examples,
    )
    if fresh is not None:
        run.poll_freshness_s, run.probes = fresh.finish(args.drain_timeout)
    if mode.logging:
        expected = (load.sent_ok * STAGES, load.sent_ok * args.batch_size * PREDICTION_MODELS)
        found, waited = drain(target.settings, prefix, expected, args.drain_timeout)
        run.rows_expected = sum(expected)
        run.rows_found = sum(found)
        run.rows_lost = sum(max(0, e - f) for e, f in zip(expected, found, strict=True))
        run.rows_duplicated = sum(max(0, f - e) for e, f in zip(expected, found, strict=True))
        run.drain_s = waited
        if not mode.pause_collector:
            run.freshness_s = stored_freshness(target.settings, prefix, load.answered_at)
    if mode.trace:
        run.trace_bytes = target.trace_bytes() - trace0
    run.server_died = not target.alive()
    return run


# ----------------------------------------------------------------------------- report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(
    runs: Sequence[Run], modes: Sequence[str], concurrencies: Sequence[int], batch_size: int = 8
) -> list[dict[str, float | str]]:
    """Per concurrency and mode: medians over repetitions, ratios to ``off``'s medians."""
    rows: list[dict[str, float | str]] = []
    keys = ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req")
    for concurrency in concurrencies:
        medians: dict[str, dict[str, float]] = {}
        for name in modes:
            mine = [r for r in runs if r.mode == name and r.concurrency == concurrency and r.valid]
            medians[name] = {key: _median([getattr(r, key) for r in mine]) for key in keys}
            medians[name]["collector_cpu_ms_per_req"] = _median(
                [r.collector_cpu_ms_per_req for r in mine]
            )
            medians[name]["flush_cpu_ms_per_req"] = _median(
                [r.flush_cpu_ms_per_req for r in mine if not math.isnan(r.flush_cpu_ms_per_req)]
            )
        base = medians.get(BASELINE)
        for name in modes:
            mine = [r for r in runs if r.mode == name and r.concurrency == concurrency]
            m = medians[name]
            row: dict[str, float | str] = {
                "concurrency": float(concurrency), "mode": name, "label": MODES[name].label, **m,
            }  # fmt: skip
            row["reps"] = float(sum(r.valid for r in mine))
            row["excluded"] = float(sum(not r.valid for r in mine))
            lost = [r.rows_lost for r in mine if r.rows_lost is not None]
            row["rows_lost"] = float(sum(lost)) if lost else float("nan")
            row["requests_checked"] = float(sum(r.sent_ok for r in mine)) if lost else float("nan")
            row["errors"] = float(sum(r.errors for r in mine))
            dup = [r.rows_duplicated for r in mine if r.rows_duplicated is not None]
            row["rows_duplicated"] = float(sum(dup)) if dup else float("nan")
            fresh = [f for r in mine if r.valid for f in r.freshness_s]
            row["fresh_n"] = float(len(fresh))
            row["fresh_p50_s"] = float(np.percentile(fresh, 50)) if fresh else float("nan")
            row["fresh_p99_s"] = float(np.percentile(fresh, 99)) if fresh else float("nan")
            polled = [f for r in mine if r.valid for f in r.poll_freshness_s]
            row["poll_n"] = float(len(polled))
            row["poll_unseen"] = float(sum(r.probes - len(r.poll_freshness_s) for r in mine))
            row["poll_p50_s"] = float(np.percentile(polled, 50)) if polled else float("nan")
            row["poll_p99_s"] = float(np.percentile(polled, 99)) if polled else float("nan")
            off_cpu = base["server_cpu_ms_per_req"] if base else float("nan")
            row["logging_cpu_ms_per_req"] = m["server_cpu_ms_per_req"] - off_cpu
            row["logging_cpu_us_per_event"] = row["logging_cpu_ms_per_req"] * 1000 / batch_size
            for key in keys:
                row[f"{key}_vs_off"] = _ratio(m[key], base[key]) if base else float("nan")
            row["throughput_paired_vs_off"] = _paired_ratio(runs, name, concurrency)
            rows.append(row)
    return rows


def _paired_ratio(runs: Sequence[Run], mode: str, concurrency: int) -> float:
    """Median over repetitions of throughput(mode, rep) / throughput(off, rep).

    The windows of one repetition run back to back, so this ratio cancels slow drift of a
    shared machine better than the ratio of the two medians.
    """
    by = {(r.mode, r.repetition): r for r in runs if r.concurrency == concurrency and r.valid}
    ratios = [
        _ratio(r.throughput_rps, by[(BASELINE, rep)].throughput_rps)
        for (name, rep), r in by.items()
        if name == mode and (BASELINE, rep) in by
    ]
    return _median([x for x in ratios if x == x])


def _ratio(a: float | str, b: float | str) -> float:
    """``a / b``, NaN when ``b`` is 0 or NaN."""
    if isinstance(a, str) or isinstance(b, str) or not b or b != b:
        return float("nan")
    return a / b


def _fmt(value: float | str | None, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if value != value:  # NaN
        return "-"
    return format(value, spec)


def render(
    runs: Sequence[Run],
    summary: Sequence[dict],
    stacks: Sequence[ModeStack],
    crashes: Sequence[tuple[str, int, int, str]],
    args: argparse.Namespace,
) -> str:
    """The text report: every window, then the summary tables and the headline ratios."""
    out: list[str] = ["# stacks (started once, side by side; restarted only after a crash)"]
    for target in stacks:
        out.append(
            f"{target.mode.name:<8} {target.mode.label:<40} grpc {target.stack.grpc_url}, "
            f"up in {target.startup_s:.1f} s"
        )
    for name, concurrency, rep, report in crashes:
        out.append(f"CRASH: {name} server died during window c{concurrency} rep {rep}; restarted:")
        out.extend(f"    {line}" for line in report.splitlines())
    out.append("")
    out.append("# windows (in the order they ran)")
    out.append(
        f"{'mode':<8} {'conc':>4} {'rep':>3} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'answered':>8} {'err':>4} {'srv cpu ms/req':>14} {'coll cpu ms/req':>15} "
        f"{'rows lost':>9} {'dup':>4} {'drain s':>7} {'trace MB':>8}"
    )
    for r in runs:
        trace_mb = None if r.trace_bytes is None else r.trace_bytes / 1e6
        out.append(
            f"{r.mode:<8} {r.concurrency:>4} {r.repetition:>3} {r.throughput_rps:>8.1f} "
            f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.requests:>8} {r.errors:>4} "
            f"{r.server_cpu_ms_per_req:>14.2f} {r.collector_cpu_ms_per_req:>15.2f} "
            f"{_fmt(r.rows_lost, 'd'):>9} {_fmt(r.rows_duplicated, 'd'):>4} "
            f"{_fmt(r.drain_s):>7} {_fmt(trace_mb, '.2f'):>8}"
            + ("  server died: window excluded" if r.server_died else "")
            + ("  errors: window excluded" if r.errors and not r.server_died else "")
        )
        for example in r.error_examples:
            out.append(f"    error: {example}")
    for concurrency in args.concurrency_list:
        mine = [row for row in summary if row["concurrency"] == concurrency]
        out.append("")
        out.append(
            f"# summary, concurrency {concurrency}, batch {args.batch_size}: median over the valid "
            f"windows (of {args.repetitions}) of {args.duration:g} s, ratio to mode off "
            "(paired: median of per-repetition ratios)"
        )
        out.append(
            f"{'mode':<8} {'label':<40} {'req/s':>8} {'x off':>6} {'paired':>6} {'p50 ms':>7} "
            f"{'x off':>6} {'p99 ms':>7} {'x off':>6} {'srv cpu ms/req':>14} {'x off':>6} "
            f"{'coll cpu ms/req':>15} {'rows lost':>9} {'of requests':>11} {'errors':>6} "
            f"{'windows':>7}"
        )
        for row in mine:
            out.append(
                f"{row['mode']:<8} {row['label']:<40} {row['throughput_rps']:>8.1f} "
                f"{_fmt(row['throughput_rps_vs_off'], '.3f'):>6} "
                f"{_fmt(row['throughput_paired_vs_off'], '.3f'):>6} {row['p50_ms']:>7.2f} "
                f"{_fmt(row['p50_ms_vs_off'], '.3f'):>6} {row['p99_ms']:>7.2f} "
                f"{_fmt(row['p99_ms_vs_off'], '.3f'):>6} {row['server_cpu_ms_per_req']:>14.2f} "
                f"{_fmt(row['server_cpu_ms_per_req_vs_off'], '.3f'):>6} "
                f"{row['collector_cpu_ms_per_req']:>15.2f} {_fmt(row['rows_lost'], '.0f'):>9} "
                f"{_fmt(row['requests_checked'], '.0f'):>11} {_fmt(row['errors'], '.0f'):>6} "
                f"{row['reps']:>4.0f}/{row['reps'] + row['excluded']:.0f}"
            )
        out.append(
            f"{'mode':<8} {'logging cpu ms/req':>18} {'us/event':>8} {'flush cpu ms/req':>16} "
            f"{'coll cpu ms/req':>15} {'coll us/event':>13} {'fresh p50 s':>11} "
            f"{'fresh p99 s':>11} {'of reqs':>7} {'poll p50 s':>10} {'poll p99 s':>10} "
            f"{'probes':>6} {'unseen':>6} {'rows dup':>8}"
        )
        for row in mine:
            if row["mode"] == BASELINE:
                continue
            coll = row["collector_cpu_ms_per_req"]
            out.append(
                f"{row['mode']:<8} {_fmt(row['logging_cpu_ms_per_req'], '.3f'):>18} "
                f"{_fmt(row['logging_cpu_us_per_event'], '.1f'):>8} "
                f"{_fmt(row['flush_cpu_ms_per_req'], '.3f'):>16} "
                f"{_fmt(coll, '.3f'):>15} "
                f"{_fmt(coll * 1000 / args.batch_size, '.1f'):>13} "
                f"{_fmt(row['fresh_p50_s'], '.2f'):>11} {_fmt(row['fresh_p99_s'], '.2f'):>11} "
                f"{_fmt(row['fresh_n'], '.0f'):>7} {_fmt(row['poll_p50_s'], '.2f'):>10} "
                f"{_fmt(row['poll_p99_s'], '.2f'):>10} {_fmt(row['poll_n'], '.0f'):>6} "
                f"{_fmt(row['poll_unseen'], '.0f'):>6} {_fmt(row['rows_duplicated'], '.0f'):>8}"
            )
        by_mode = {row["mode"]: row for row in mine}
        if "full" in by_mode and "spool" in by_mode and BASELINE in by_mode:
            out.append(
                f"store paused / off (concurrency {concurrency}): throughput "
                f"{_fmt(by_mode['spool']['throughput_rps_vs_off'], '.3f')}x "
                f"(paired {_fmt(by_mode['spool']['throughput_paired_vs_off'], '.3f')})"
            )
        if "full" in by_mode and "trace" in by_mode:
            full, trace = by_mode["full"], by_mode["trace"]
            out.append(
                f"full logging / Triton trace (concurrency {concurrency}): throughput "
                f"{_fmt(_ratio(full['throughput_rps'], trace['throughput_rps']), '.3f')}x, "
                f"p50 {_fmt(_ratio(full['p50_ms'], trace['p50_ms']), '.3f')}x, "
                f"p99 {_fmt(_ratio(full['p99_ms'], trace['p99_ms']), '.3f')}x"
            )
            if BASELINE in by_mode:  # issue 11's target 1.25x of the trace, as a ratio to off
                need = TRACE_TARGET * trace["throughput_rps_vs_off"]
                out.append(
                    f"Triton trace / off (concurrency {concurrency}): throughput "
                    f"{_fmt(trace['throughput_rps_vs_off'], '.3f')}x; {TRACE_TARGET:g}x the trace "
                    f"means full / off >= {_fmt(need, '.3f')}"
                    + (" (logging off's own throughput or more)" if need >= 1 else "")
                )
    return "\n".join(out)


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def header(argv: Sequence[str], prog: str = "bench.overhead") -> str:
    """Command, machine and software versions, as comment lines."""
    load = os.getloadavg()
    return "\n".join(
        [
            f"# command: python -m {prog} {shlex.join(argv)}",
            f"# started: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
            f"# machine: {os.cpu_count()} CPUs ({cpu_model()}), "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB, {platform.platform()}",
            f"# load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            f"# python {platform.python_version()}, numpy {np.__version__}, commit {_git_commit()}",
        ]
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--modes", default=",".join(DEFAULT_MODES),
        help=f"comma-separated, from {', '.join(MODES)} (default: {','.join(DEFAULT_MODES)})",
    )  # fmt: skip
    parser.add_argument("--repetitions", type=int, default=7, help="windows per mode and level")
    parser.add_argument(
        "--concurrency", default="8", help="requests in flight; several: 8,32 (default: 8)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="events per request")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the window")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds")
    parser.add_argument("--settle", type=float, default=1.0, help="pause between windows")
    parser.add_argument("--sample-rate", type=float, default=0.1, help="for mode sampled")
    parser.add_argument("--trace-log-frequency", type=int, default=100)
    parser.add_argument(
        "--flush-ms", type=int, default=None,
        help="STAGELOG_FLUSH_MS of the logging stacks (default: the setting's own default)",
    )  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--fresh-every", type=float, default=0.0,
        help="seconds between polled freshness probes, a cross-check of the stored_at figure "
        "(default 0: none; each poll is load on the collector)",
    )  # fmt: skip
    parser.add_argument(
        "--fresh-poll", type=float, default=0.5,
        help="seconds between polls (each costs the collector ~20 ms of CPU: bench/results/i11d)",
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--model-repository", default=str(launcher.DEFAULT_MODEL_REPOSITORY))
    parser.add_argument("--out", type=Path, help="also write the text report here")
    parser.add_argument(
        "--report", type=Path,
        help="print the summary of an earlier run's --json file, .json.xz too (nothing is run)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.mode_list if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if BASELINE not in args.mode_list:
        parser.error(f"mode {BASELINE!r} is the baseline of every ratio and must be included")
    try:
        args.concurrency_list = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--concurrency {args.concurrency!r} is not a comma-separated list of numbers")
    if not args.concurrency_list or min(args.concurrency_list) < 1:
        parser.error("--concurrency must list numbers >= 1")
    if args.repetitions < 1 or args.batch_size < 1:
        parser.error("--repetitions and --batch-size must be >= 1")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    return args


def schedule(
    modes: Sequence[str], concurrencies: Sequence[int], repetitions: int
) -> list[tuple[str, int, int]]:
    """Window order: each repetition runs every level and mode, modes rotated by repetition."""
    order: list[tuple[str, int, int]] = []
    for rep in range(repetitions):
        shift = rep % len(modes)
        rotated = [*modes[shift:], *modes[:shift]]
        for concurrency in concurrencies:
            order.extend((mode, concurrency, rep) for mode in rotated)
    return order


def kill_leftovers(home: Path) -> list[int]:
    """Kill the stub processes a crashed server left behind (their command names ``home``)."""
    killed: list[int] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(str(home) in part for part in cmdline):
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
    return killed


def _upgrade(run: dict) -> dict:
    """A run of a file written before freshness came from ``stored_at``: its list was polled."""
    if "poll_freshness_s" not in run:
        run = {**run, "poll_freshness_s": run.get("freshness_s", []), "freshness_s": []}
    return run


def report_json(path: Path) -> int:
    """Print the summary tables of a ``--json`` file written by an earlier run.

    A ``.json.xz`` file is read too: the kept run records are xz-compressed (bench/RESULTS.md).
    """
    raw = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
    doc = json.loads(raw)
    args = parse_args(doc["argv"])
    runs = [Run(**_upgrade(run)) for run in doc["runs"]]
    crashes = [tuple(c) for c in doc.get("crashes", [])]
    summary = summarize(runs, args.mode_list, args.concurrency_list, args.batch_size)
    text = render(runs, summary, [], crashes, args)
    print(f"# summary of {path} (python -m bench.overhead {shlex.join(doc['argv'])})")
    print(text[text.index("# summary") :] if "# summary" in text else text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.overhead``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report:
        return report_json(args.report)
    lines = [header(argv)]
    print(lines[0], flush=True)
    source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
    runs: list[Run] = []
    stacks: dict[str, ModeStack] = {}
    homes: list[config.Settings] = []
    crashes: list[tuple[str, int, int, str]] = []
    with tempfile.TemporaryDirectory(prefix="stagelog-overhead-") as tmp:

        def launch(name: str) -> None:
            home = Path(tmp) / f"{name}-{sum(h.home.name.startswith(name) for h in homes)}"
            homes.append(config.load(home=home))
            stacks[name] = start(MODES[name], home, args)
            print(f"# {name}: up in {stacks[name].startup_s:.1f} s", flush=True)

        try:
            for name in args.mode_list:
                launch(name)
            for name, concurrency, rep in schedule(
                args.mode_list, args.concurrency_list, args.repetitions
            ):
                time.sleep(args.settle)
                run = measure(stacks[name], concurrency, rep, args, source)
                runs.append(run)
                if run.server_died:
                    report = stacks[name].crash_report()
                    crashes.append((name, concurrency, rep, report))
                    print(f"# CRASH of {name}:\n{report}", flush=True)
                    launcher.down(stacks[name].settings)
                    kill_leftovers(stacks[name].settings.home)
                    launch(name)
                print(
                    f"# {name} c{concurrency} rep {rep}: {run.throughput_rps:.1f} req/s, "
                    f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
                    f"srv cpu {run.server_cpu_ms_per_req:.2f} ms/req, "
                    f"lost {_fmt(run.rows_lost, 'd')}, errors {run.errors}",
                    flush=True,
                )
        finally:
            for settings in homes:  # down finds what runs in a home by its pid files
                launcher.down(settings)
                kill_leftovers(settings.home)
    summary = summarize(runs, args.mode_list, args.concurrency_list, args.batch_size)
    report = render(runs, summary, list(stacks.values()), crashes, args)
    lines.append(report)
    text = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "argv": argv, "runs": [asdict(r) for r in runs], "summary": summary,
            "crashes": [list(c) for c in crashes],
        }  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    lost = sum(r.rows_lost or 0 for r in runs)
    errors = sum(r.errors for r in runs)
    return 1 if lost or errors else 0


if __name__ == "__main__":
    sys.exit(main())
