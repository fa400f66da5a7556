"""Where a stage's CPU goes under load: py-spy samples of every Python stub of `pipeline`.

Starts a stack (logging ``full`` by default, ``--no-logging`` for the baseline), drives it with
the same closed-loop clients as ``bench.overhead``, and meanwhile samples each stage's stub
process with ``py-spy record`` (all threads, idle excluded). Writes the raw collapsed stacks per
stage under ``--out`` (one ``<stage>.txt`` each, py-spy's ``raw`` format) and prints, per stage,
the share of busy samples spent in

- ``model``: ``execute`` outside ``logging_backend`` (the stage's own work),
- ``log: request path``: ``execute`` inside ``logging_backend`` (the ``rec.*`` calls),
- ``log: flush thread``: the stage logger's background thread (encode + spool write),
- ``triton I/O``: the backend's tensor (de)serialization outside ``execute``,

and the source lines of ``logging_backend`` (and what they call) with the most samples.

Usage::

    python -m bench.profile_stages --out bench/results/profile-full
    python -m bench.profile_stages --no-logging --out bench/results/profile-off
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from bench.overhead import closed_loop, header
from loadtest.workload import EventSource
from logging_backend import config
from logging_backend.stack import launcher

STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
CATEGORIES = ("model", "log: request path", "log: flush thread", "triton I/O", "other")
_IDLE = ("Condition.wait", "Event.wait", "sleep (")
_LINE = re.compile(r"\s\((?P<file>[^()]+):(?P<line>\d+)\)$")


def stage_stubs(triton_pid: int, repository: Path) -> dict[str, int]:
    """Map each pipeline stage to the pid of its stub (the version the ensemble uses: newest)."""
    found: dict[str, tuple[int, int]] = {}
    for child in psutil.Process(triton_pid).children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if len(cmdline) < 2 or not cmdline[1].endswith("model.py"):
            continue
        model_py = Path(cmdline[1])
        stage, version = model_py.parent.parent.name, model_py.parent.name
        if stage in STAGES and model_py.parent.parent.parent == repository:
            rank = int(version) if version.isdigit() else 0
            if stage not in found or rank > found[stage][0]:
                found[stage] = (rank, child.pid)
    return {stage: pid for stage, (_, pid) in found.items()}


def categorize(frames: list[str]) -> str | None:
    """The category of one sample (None: idle)."""
    joined = ";".join(frames)
    if any(mark in frames[-1] for mark in _IDLE) or len(frames) <= 1:
        return None
    if "execute (" in joined:
        return "log: request path" if "logging_backend/" in joined else "model"
    if "BatchProcessor" in joined or "stagelog-flush" in frames[0]:
        return "log: flush thread"
    if "triton_python_backend_utils" in joined:
        return "triton I/O"
    return "other"


def read_raw(path: Path) -> Iterable[tuple[list[str], int]]:
    """(frames, count) of each line of a py-spy ``raw`` file."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def logging_lines(frames: list[str]) -> str | None:
    """The innermost ``logging_backend`` frame of a sample, plus what it called, if any."""
    inner = [i for i, frame in enumerate(frames) if "logging_backend/" in frame]
    if not inner:
        return None
    i = inner[-1]
    callee = frames[i + 1] if i + 1 < len(frames) else "(self)"
    return f"{frames[i]} -> {_LINE.sub('', callee)}"


def report(raw_files: dict[str, Path]) -> str:
    """The text summary of the per-stage profiles."""
    out: list[str] = []
    head = f"{'stage':<11} {'busy':>6} " + " ".join(f"{c:>18}" for c in CATEGORIES)
    out.append("# share of busy samples per stage (py-spy, all threads, idle excluded)")
    out.append(head)
    hot: collections.Counter[str] = collections.Counter()
    totals: collections.Counter[str] = collections.Counter()
    for stage, path in raw_files.items():
        counts: collections.Counter[str] = collections.Counter()
        for frames, n in read_raw(path):
            category = categorize(frames)
            if category is None:
                continue
            counts[category] += n
            totals[category] += n
            if category.startswith("log:"):
                where = logging_lines(frames)
                if where:
                    hot[where] += n
        busy = sum(counts.values())
        shares = " ".join(f"{100 * counts[c] / busy if busy else 0:>17.1f}%" for c in CATEGORIES)
        out.append(f"{stage:<11} {busy:>6} {shares}")
    busy = sum(totals.values())
    shares = " ".join(f"{100 * totals[c] / busy if busy else 0:>17.1f}%" for c in CATEGORIES)
    out.append(f"{'all':<11} {busy:>6} {shares}")
    logged = totals["log: request path"] + totals["log: flush thread"]
    out.append("")
    out.append(f"# hottest logging_backend lines (share of all {logged} logging samples)")
    for where, n in hot.most_common(15):
        out.append(f"{100 * n / logged if logged else 0:5.1f}%  {where}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.profile_stages``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_stages", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the raw profiles")
    parser.add_argument("--no-logging", action="store_true", help="profile with logging off")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--flush-ms", type=int, default=None, help="STAGELOG_FLUSH_MS")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        parser.error("py-spy not found: pip install py-spy")
    argv = list(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stagelog-profile-") as tmp:
        home = Path(tmp)
        grpc_port, http_port, metrics_port = launcher.free_ports(3)
        settings = config.load(
            home=home, dsn=f"chdb://{home / 'clickhouse'}", grpc_port=grpc_port,
            http_port=http_port, metrics_port=metrics_port, logging=not args.no_logging,
            flush_ms=args.flush_ms,
        )  # fmt: skip
        try:
            stack = launcher.up(settings, timeout=300)
            stubs = stage_stubs(stack.triton_pid, Path(stack.model_repository))
            missing = [s for s in STAGES if s not in stubs]
            if missing:
                raise RuntimeError(f"no stub process found for {', '.join(missing)}")
            recorders: dict[str, subprocess.Popen] = {}

            def sampling() -> tuple[float, float]:
                # Called by closed_loop when the window opens (and when it closes): start py-spy
                # once, on every stub, for the window's length.
                if not recorders:
                    for stage, pid in stubs.items():
                        recorders[stage] = subprocess.Popen(  # noqa: S603
                            [
                                py_spy,
                                "record",
                                "--pid",
                                str(pid),
                                "--duration",
                                str(int(args.duration)),
                                "--rate",
                                str(args.rate),
                                "--threads",
                                "--format",
                                "raw",
                                "--output",
                                str(args.out / f"{stage}.txt"),
                            ],  # fmt: skip
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                        )
                return 0.0, 0.0

            source = EventSource(pool_size=5000, seed=13, bad_share=0.0)
            load = asyncio.run(
                closed_loop(
                    stack.grpc_url, source, f"profile-{int(time.time())}", args.concurrency,
                    args.batch_size, args.warmup, args.duration, sampling,
                )
            )  # fmt: skip
            for stage, proc in recorders.items():
                _, err = proc.communicate(timeout=120)
                if proc.returncode != 0:
                    raise RuntimeError(f"py-spy on {stage} failed: {err.decode()[-500:]}")
        finally:
            launcher.down(settings)
    rate = len(load.latencies_ms) / load.window_s
    mode = "logging off" if args.no_logging else "full logging"
    text = "\n".join(
        [
            header(argv, prog="bench.profile_stages"),
            f"# {mode}: {rate:.1f} req/s while sampled ({args.concurrency} clients, "
            f"batch {args.batch_size}, {args.duration:.0f} s, py-spy {args.rate} Hz)",
            report({stage: args.out / f"{stage}.txt" for stage in STAGES}),
        ]
    )
    (args.out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
