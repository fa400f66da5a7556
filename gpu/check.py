"""The GPU check: serve the pipeline with GPU members and with CPU members, score, summarise.

Run by ``gpu/check.sh`` on the H100 machine (which sets up the carried tritonserver, NumPy 1.26
site and wheels first), or here with ``--cpu`` as a dry run on CPU. For each phase it starts
the stack with logging on and no collector (the spool is kept), scores the same seeded events
at each batch size, stops the stack (the stages flush their spool), and then reads the spool
segments directly with pyarrow. It writes into ``--out``:

- ``summary.json`` / ``summary.md``: per-stage wall, CPU and GPU time (from ``stage_events``),
  whether every member row of the GPU phase has ``gpu_ms``, throughput per batch size (GPU
  members vs CPU members), device samples (``system_samples``), the CUDA-event probe's
  request-path cost, fallbacks (``logging_policy``);
- ``server-logs.txt``: the end of each phase's tritonserver log;
- ``spool-<phase>.tar``: the phase's spool segments, for ``stagelog ingest`` at home.

Usage: ``python gpu/check.py --out DIR [--cpu] [--events-per-batch-size N] [--batch-sizes ...]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tarfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logging_backend import config  # noqa: E402
from logging_backend.spool import layout  # noqa: E402
from logging_backend.stack import launcher  # noqa: E402
from logging_backend.stack.gpu_repository import MEMBERS, write_gpu_repository  # noqa: E402

MAX_TAR_BYTES = 15 * 2**20  # the device tool returns files of at most 16 MiB
SERVER_LOG_LINES = 60
REFERENCE_ROWS = 32


def log(message: str) -> None:
    """Print a timestamped progress line (the check's log is its stdout)."""
    print(f"[check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- serving + load


def numpy2_member_stubs() -> bool:
    """Whether member stubs will import NumPy 2 (then they cannot take string tensors)."""
    if os.environ.get("STAGELOG_NP1_SITE"):  # gpu/stub_site splits NumPy per stub
        return True
    import numpy

    return int(numpy.__version__.split(".")[0]) >= 2


def phase_repository(home: Path, kind: str, split: bool) -> Path:
    """The model repository a phase serves (generated under its home)."""
    return write_gpu_repository(
        ROOT / "model_repository", home / "model_repository", kind=kind,
        map_request_id=not split,
    )


def score_load(
    grpc_url: str,
    phase: str,
    events: list[dict],
    batch_sizes: list[int],
    events_per_batch_size: int,
    min_requests: int,
    concurrency: int,
    warmup: int,
    deadline: float = math.inf,
) -> list[dict[str, Any]]:
    """Score ``events`` at each batch size with ``concurrency`` clients; one row per size.

    Batch sizes not started by ``deadline`` (``time.monotonic()``) are skipped and say so.
    """
    import tritonclient.grpc as grpcclient

    from clients.score import score_batch

    local = threading.local()

    def client() -> Any:
        if not hasattr(local, "client"):
            local.client = grpcclient.InferenceServerClient(grpc_url)
        return local.client

    def send(args: tuple[str, list[dict]]) -> float:
        request_id, batch = args
        result = score_batch(client(), batch, request_id=request_id, timeout_s=120.0)
        if len(result.decisions) != len(batch):
            raise RuntimeError(f"{request_id}: {len(result.decisions)} answers for {len(batch)}")
        return result.latency_ms

    rows = []
    with ThreadPoolExecutor(concurrency) as pool:
        for size in batch_sizes:
            if time.monotonic() > deadline:
                log(f"{phase} batch {size}: skipped, the check's time budget is spent")
                rows.append({"phase": phase, "batch_size": size, "skipped": "time budget",
                             "requests": 0, "events_per_s": None, "requests_per_s": None,
                             "latency_ms_p50": None, "latency_ms_p95": None})
                continue
            n_requests = max(min_requests, math.ceil(events_per_batch_size / size))
            batches = [
                [events[(i * size + j) % len(events)] for j in range(size)]
                for i in range(n_requests)
            ]
            list(pool.map(send, [(f"warmup-{phase}-b{size}-{i}", batches[i % n_requests])
                                 for i in range(warmup)]))
            jobs = [(f"{phase}-b{size}-{i:05d}", b) for i, b in enumerate(batches)]
            started = time.perf_counter()
            latencies = list(pool.map(send, jobs))
            wall = time.perf_counter() - started
            latencies.sort()
            row = {
                "phase": phase,
                "batch_size": size,
                "requests": n_requests,
                "events": n_requests * size,
                "concurrency": concurrency,
                "wall_s": round(wall, 3),
                "events_per_s": round(n_requests * size / wall, 1),
                "requests_per_s": round(n_requests / wall, 1),
                "latency_ms_p50": round(_quantile(latencies, 0.5), 3),
                "latency_ms_p95": round(_quantile(latencies, 0.95), 3),
            }
            log(f"{phase} batch {size}: {row['events_per_s']} events/s, "
                f"p50 {row['latency_ms_p50']} ms, p95 {row['latency_ms_p95']} ms")
            rows.append(row)
    return rows


def reference_probabilities(grpc_url: str, phase: str, events: list[dict]) -> list[list[float]]:
    """The first request of a phase: the same 32 events, so phases can be compared exactly."""
    import tritonclient.grpc as grpcclient

    from clients.score import score_batch

    client = grpcclient.InferenceServerClient(grpc_url)
    result = score_batch(client, events[:REFERENCE_ROWS], request_id=f"reference-{phase}")
    return [[round(float(p), 7) for p in row] for row in result.probabilities]


def run_phase(
    args: argparse.Namespace, phase: str, device: str, events: list[dict], kind: str
) -> dict:
    """Start the stack for one phase, score, stop it; return throughput rows and paths."""
    home = Path(args.work) / phase
    if home.exists():
        import shutil

        shutil.rmtree(home)
    split = numpy2_member_stubs()
    repo = phase_repository(home, kind, split)
    ports = launcher.free_ports(3)
    settings = config.load(home=home, grpc_port=ports[0], http_port=ports[1],
                           metrics_port=ports[2], logging=True, device=device)
    log(f"{phase}: starting tritonserver (STAGELOG_DEVICE={device}, members "
        f"{kind}, NumPy split {split}) in {home}")
    started = time.perf_counter()
    result: dict[str, Any] = {"phase": phase, "device": device, "instance_kind": kind,
                              "home": str(home), "load": []}
    try:
        stack = launcher.up(settings, model_repository=repo, timeout=args.start_timeout,
                            collector=False)
        result["start_s"] = round(time.perf_counter() - started, 1)
        result["triton_version"] = stack.triton_version
        log(f"{phase}: ready in {result['start_s']} s (Triton {stack.triton_version})")
        result["reference_probabilities"] = reference_probabilities(stack.grpc_url, phase, events)
        result["load"] = score_load(
            stack.grpc_url, phase, events, args.batch_sizes, args.events_per_batch_size,
            args.min_requests, args.concurrency, args.warmup, deadline=args.deadline[phase],
        )
    except Exception as exc:  # keep going: the other phase and the logs are still worth having
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{phase}: FAILED {result['error']}")
        traceback.print_exc()
    finally:
        launcher.down(settings)
        log(f"{phase}: stopped; spool flushed")
    logs = sorted(settings.logs_dir.glob("*.log")) if settings.logs_dir.is_dir() else []
    result["server_log_tail"] = {
        p.name: launcher.log_tail(p, SERVER_LOG_LINES) for p in logs
    }
    result["server_log_highlights"] = highlights(logs)
    return result


HIGHLIGHT = ("stagelog_numpy_split", "Traceback", "Error", "error:", "WARNING", "W1", "E1",
             "fallback", "CPU:", "successfully loaded")


def highlights(logs: list[Path], limit: int = 80) -> list[str]:
    """Lines worth reading from the server logs (NumPy choice per stub, warnings, errors)."""
    lines: list[str] = []
    for path in logs:
        with path.open(errors="replace") as f:
            for line in f:
                if any(key in line for key in HIGHLIGHT) and len(lines) < limit:
                    lines.append(f"{path.name}: {line.rstrip()[:300]}")
    return lines


# --------------------------------------------------------------------------- spool summary


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def read_table(spool: Path, table: str) -> list[dict[str, Any]]:
    """All rows of one table's segments in a spool folder."""
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for segment in sorted((spool / table).glob("*.arrow")):
        with pa.OSFile(str(segment), "rb") as source:
            rows.extend(pa.ipc.open_stream(source).read_all().to_pylist())
    return rows


def _stats(values: list[float]) -> dict[str, float | None]:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 4),
        "p50": round(_quantile(values, 0.5), 4),
        "p95": round(_quantile(values, 0.95), 4),
    }


def summarise_spool(spool: Path, phase: str) -> dict[str, Any]:
    """Per-stage timings, member GPU coverage, devices, samples and fallbacks of a phase."""
    layout.split_containers(spool)  # stages write one v2 file per flush; read table by table
    events = read_table(spool, "stage_events")
    scored = [e for e in events if not str(e["request_id"]).startswith("warmup-")]
    stages: dict[str, Any] = {}
    for stage in sorted({e["stage"] for e in events}):
        rows = [e for e in scored if e["stage"] == stage]
        mems = [e["gpu_mem_bytes"] for e in rows if e["gpu_mem_bytes"] is not None]
        stages[stage] = {
            "rows": len(rows),
            "errors": sum(e["status"] != "ok" for e in rows),
            "devices": sorted({e["device"] for e in rows}),
            "wall_ms": _stats([e["wall_ms"] for e in rows]),
            "cpu_ms": _stats([e["cpu_ms"] for e in rows]),
            "gpu_ms": _stats([e["gpu_ms"] for e in rows]),
            "gpu_ms_null": sum(e["gpu_ms"] is None for e in rows),
            "gpu_mem_bytes_max": max(mems) if mems else None,
        }
    members = [e for e in events if e["stage"] in MEMBERS]
    requests = {e["request_id"] for e in members}
    without = {e["request_id"] for e in members if e["gpu_ms"] is None}
    samples = read_table(spool, "system_samples")
    gpu_samples = [s for s in samples if s.get("source") == "gpu"]
    return {
        "phase": phase,
        "stage_events": len(events),
        "stages": stages,
        "member_requests": len(requests),
        "member_requests_without_gpu_ms": len(without),
        "member_requests_empty_id": sum(1 for r in requests if not r),
        "model_versions": sorted(
            {(r["model_name"], r["model_version"], r["device"])
             for r in read_table(spool, "model_versions")}
        ),
        "logging_policy": [
            {"model": r["model_name"], "policy": r["policy"], "reason": r["reason"]}
            for r in read_table(spool, "logging_policy")
        ],
        "system_samples": {
            "rows": len(gpu_samples),
            "gpu_util_max": max((s["gpu_util"] or 0 for s in gpu_samples), default=None),
            "gpu_mem_used_max": max((s["gpu_mem_used"] or 0 for s in gpu_samples), default=None),
            "power_w_max": max((s["power_w"] or 0 for s in gpu_samples), default=None),
            "temperature_c_max": max((s["temperature_c"] or 0 for s in gpu_samples),
                                     default=None),
        },
    }


def tar_spool(spool: Path, target: Path, limit: int = MAX_TAR_BYTES) -> dict[str, Any]:
    """Tar the spool's segments (already zstd inside), bulky ``stage_tensors`` last, under limit.

    Returns:
        What went in and what was left out (counts per table).
    """
    layout.split_containers(spool)  # v1 files per table: tensors can be left out first
    segments = sorted(spool.glob("*/*.arrow"), key=lambda p: (p.parent.name == "stage_tensors", p))
    budget = limit - 64 * 1024  # the archive's end blocks and record padding
    while True:
        kept: dict[str, int] = {}
        left: dict[str, int] = {}
        size = 0
        with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as tar:
            for segment in segments:
                table = segment.parent.name
                cost = segment.stat().st_size + 2048  # header + padding, with room to spare
                if size + cost > budget:
                    left[table] = left.get(table, 0) + 1
                    continue
                tar.add(segment, arcname=f"spool/{table}/{segment.name}")
                kept[table] = kept.get(table, 0) + 1
                size += cost
        if target.stat().st_size <= limit:
            break
        budget -= target.stat().st_size - limit + 256 * 1024
    return {"file": target.name, "bytes": target.stat().st_size, "segments": kept,
            "left_out": left}


# --------------------------------------------------------------------------- probe cost


def probe_cost(device: str, n: int = 20000) -> dict[str, Any]:
    """Request-path cost of ``GpuProbe.start()`` + ``stop()`` (and flush-side resolve)."""
    from bench.gpu_probe import measure

    try:
        return measure(device, n)
    except Exception as exc:
        return {"device": device, "error": f"{type(exc).__name__}: {exc}"}


# --------------------------------------------------------------------------- report


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a short Markdown report."""
    lines = [f"# GPU check — {summary['card']}", "", f"- started: {summary['started_at']}",
             f"- mode: {summary['mode']}; batch sizes {summary['batch_sizes']}, "
             f"concurrency {summary['concurrency']}", ""]
    lines += ["## Throughput (ensemble `pipeline`, logging on)", "",
              "| members | batch | requests | events/s | req/s | p50 ms | p95 ms |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for phase in summary["phases"]:
        for row in phase["load"]:
            lines.append(f"| {phase['phase']} | {row['batch_size']} | {row['requests']} | "
                         f"{row['events_per_s']} | {row['requests_per_s']} | "
                         f"{row['latency_ms_p50']} | {row['latency_ms_p95']} |")
    for phase in summary["phases"]:
        spool = phase.get("spool_summary") or {}
        kind = phase.get("instance_kind", "?")
        lines += ["", f"## Per-stage time, {phase['phase']} members ({kind} instances; from "
                  "the spool's stage_events, warm-up excluded)", "",
                  "| stage | rows | device | wall p50 | cpu p50 | gpu p50 | gpu p95 | gpu NULL |"
                  " GPU mem max |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for stage, s in spool.get("stages", {}).items():
            mem = s["gpu_mem_bytes_max"]
            lines.append(
                f"| {stage} | {s['rows']} | {','.join(s['devices'])} | {s['wall_ms']['p50']} | "
                f"{s['cpu_ms']['p50']} | {s['gpu_ms']['p50']} | {s['gpu_ms']['p95']} | "
                f"{s['gpu_ms_null']} | {'' if mem is None else f'{mem / 2**20:.0f} MiB'} |")
        if spool:
            lines += ["", f"- member requests: {spool['member_requests']}, without gpu_ms: "
                      f"{spool['member_requests_without_gpu_ms']}",
                      f"- system_samples (GPU): {spool['system_samples']}",
                      f"- fallbacks/policy rows: {spool['logging_policy']}"]
        if phase.get("error"):
            lines.append(f"- ERROR: {phase['error']}")
    lines += ["", "## Same 32 events, first request of each phase: max |p_gpu - p_cpu| = "
              f"{summary.get('reference_max_abs_diff_gpu_vs_cpu')}"]
    lines += ["", f"## CUDA-event probe cost on the request path: {summary['probe_cost']}", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 0 when every phase ran and (GPU mode) every member row has gpu_ms."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stagelog-gpu-check"))
    parser.add_argument("--cpu", action="store_true",
                        help="dry run without a GPU: both phases on CPU (the first asks for "
                        "a GPU and so exercises the logged fallback)")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 16, 64, 256])
    parser.add_argument("--events-per-batch-size", type=int, default=1024)
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--start-timeout", type=float, default=90.0)
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="stop starting new batch sizes after this many seconds (the GPU "
                        "phase gets the first 60%%), so the output always comes back")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.work.exists():
        import shutil

        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    begun = time.monotonic()
    args.deadline = {"gpu": begun + 0.6 * args.budget_s, "cpu": begun + args.budget_s}

    from clients.score import generated_events

    events = generated_events(2048, args.seed)
    card = "CPU dry run (no GPU)" if args.cpu else gpu_name()
    summary: dict[str, Any] = {
        "card": card,
        "mode": "cpu-dry-run" if args.cpu else "gpu",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "batch_sizes": args.batch_sizes,
        "concurrency": args.concurrency,
        "numpy_split": numpy2_member_stubs(),
        "phases": [],
    }
    log(f"card: {card}")
    sampler = None
    for phase, device in (("gpu", "gpu"), ("cpu", "cpu")):
        spool = args.work / phase / "spool"
        if phase == "gpu" and not args.cpu:
            from logging_backend.collector.sampler import SamplerThread

            sampler = SamplerThread(spool).start()
        kind = "KIND_GPU" if device == "gpu" and not args.cpu else "KIND_CPU"
        result = run_phase(args, phase, device, events, kind)
        if kind == "KIND_GPU" and "start_s" not in result:
            # Triton could not start GPU instances: CuPy members in CPU instances still give
            # GPU timings. Recorded in the summary, never silent.
            log(f"gpu: KIND_GPU instances failed ({result.get('error')}); retrying with "
                "KIND_CPU instances and STAGELOG_DEVICE=gpu")
            failed = result
            result = run_phase(args, phase, device, events, "KIND_CPU")
            result["kind_gpu_failure"] = failed.get("error")
            result["kind_gpu_log_highlights"] = failed.get("server_log_highlights")
        if sampler is not None:
            sampler.stop()
            sampler = None
        result["spool_summary"] = summarise_spool(spool, phase) if spool.is_dir() else {}
        result["spool_tar"] = (tar_spool(spool, args.out / f"spool-{phase}.tar")
                               if spool.is_dir() else None)
        summary["phases"].append(result)
    refs = [p.get("reference_probabilities") for p in summary["phases"]]
    if all(refs) and len(refs) == 2:
        summary["reference_max_abs_diff_gpu_vs_cpu"] = max(
            abs(a - b) for ra, rb in zip(*refs, strict=True) for a, b in zip(ra, rb, strict=True)
        )
    summary["probe_cost"] = probe_cost("cpu" if args.cpu else "gpu")
    log(f"probe cost: {summary['probe_cost']}")

    with (args.out / "server-logs.txt").open("w") as f:
        for phase in summary["phases"]:
            f.write(f"===== {phase['phase']}: highlights\n")
            f.write("\n".join(phase.get("server_log_highlights", [])) + "\n")
            for name, tail in phase.pop("server_log_tail", {}).items():
                f.write(f"===== {phase['phase']}: {name} (last {SERVER_LOG_LINES} lines)\n{tail}\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary), flush=True)

    ok = all(not p.get("error") and p["load"] for p in summary["phases"])
    ok = ok and not any(r.get("skipped") for p in summary["phases"] for r in p["load"])
    ok = ok and summary.get("reference_max_abs_diff_gpu_vs_cpu", 1.0) < 1e-3
    gpu_phase = summary["phases"][0]["spool_summary"]
    if not args.cpu:
        ok = ok and gpu_phase.get("member_requests", 0) > 0 and \
            gpu_phase.get("member_requests_without_gpu_ms", 1) == 0
    log("CHECK " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def gpu_name() -> str:
    """The GPU's name from NVML (or why there is none)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return f"unknown GPU ({type(exc).__name__}: {exc})"


if __name__ == "__main__":
    sys.exit(main())
