"""The stage logger with real CuPy arrays and CUDA-event timing (run on a GPU machine).

Checks, with a member-shaped workload (FEATURES [64, 45] float32 on the GPU, a matmul + softmax
as the "model", PROBS [64, 3]):

1. correctness: every record's logged FEATURES / PROBS equal the device arrays at call time
   (the request path keeps a device copy; the flush thread fetches it), ``gpu_ms`` is set and
   > 0 on every event, ``gpu_mem_bytes`` > 0, ``device`` is ``gpu:0`` on events and on the
   ``model_versions`` row, and the segments read back with the spool schema;
2. cost: request-path µs per record (median of repetitions) for CuPy vs NumPy arrays, logging
   full vs off, with the CUDA-event probe calls included.

Usage (repository root, GPU machine with CuPy, NumPy, pyarrow, psutil)::

    python3 -m bench.gpu_stage_log --out $OUT/gpu-stage-log.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _args(root: Path) -> dict[str, Any]:
    version = root / "repo" / "mlp" / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "model.npz").write_bytes(os.urandom(4096))
    (version / "model_card.json").write_text('{"note": "gpu stage log check"}')
    return {
        "model_name": "mlp",
        "model_version": "1",
        "model_repository": str(version.parent),
        "model_instance_name": "mlp_0_gpu",
        "model_instance_device_id": "0",
        "model_config": "{}",
    }


def _model(cp: Any, x: Any, w: Any) -> Any:
    z = x @ w
    z = z - z.max(axis=1, keepdims=True)
    e = cp.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_correctness(cp: Any, root: Path, n: int, emit: Any) -> bool:
    """Log ``n`` GPU requests through the real spool writer and verify what was written."""
    import pyarrow as pa

    from logging_backend.capture.exporter import SpoolExporter
    from logging_backend.capture.gpu_probe import GpuProbe
    from logging_backend.capture.stage import StageLog
    from logging_backend.spool.layout import read_table_segment as read_segment
    from logging_backend.spool.schemas import SCHEMAS

    probe = GpuProbe.create("gpu", 0)
    assert probe.device == "gpu", f"no GPU probe: {probe.reason}"
    exporter = SpoolExporter(root / "spool")
    log = StageLog.from_triton_args(_args(root), exporter=exporter, gpu=probe)
    rng = cp.random.default_rng(1)
    w = rng.standard_normal((45, 3), dtype=cp.float32)
    expected: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(n):
        rid = f"gpu-{i}"
        x = rng.standard_normal((64, 45), dtype=cp.float32)
        with log.request(rid, rows=64) as rec:
            rec.input("FEATURES", x)
            span = probe.start()
            probs = _model(cp, x, w)
            rec.gpu_time(probe.stop(span))
            rec.output("PROBS", probs)
            rec.predictions("mlp", probs)
        expected[rid] = (cp.asnumpy(x), cp.asnumpy(probs))
        x += 1.0  # changed after logging: the log must hold the values at call time
    log.close()
    tables = {}
    for table in SCHEMAS:
        paths = sorted((root / "spool" / table).glob("*.arrow"))
        if paths:
            parts = [read_segment(p) for p in paths]
            assert all(p.schema.equals(SCHEMAS[table]) for p in parts), table
            tables[table] = pa.concat_tables(parts)
    ev = tables["stage_events"].to_pylist()
    gpu_ms = [e["gpu_ms"] for e in ev]
    ok = len(ev) == n
    ok &= all(g is not None and g > 0 for g in gpu_ms)
    ok &= all(e["device"] == "gpu:0" for e in ev)
    ok &= all((e["gpu_mem_bytes"] or 0) > 0 for e in ev)
    mv = tables["model_versions"].to_pylist()
    ok &= len(mv) == 1 and mv[0]["device"] == "gpu:0"
    mismatches = 0
    for t in tables["stage_tensors"].to_pylist():
        x, p = expected[t["request_id"]]
        want = x if t["name"] == "FEATURES" else p
        got = np.array(t["values_f64"], dtype=np.float64).reshape(t["shape"])
        if not np.array_equal(got, want.astype(np.float64)):
            mismatches += 1
    ok &= mismatches == 0 and len(tables["stage_tensors"]) == 2 * n
    preds = tables["predictions"].to_pylist()
    ok &= len(preds) == 64 * n
    emit(
        f"correctness: {'OK' if ok else 'FAILED'}: {len(ev)} events, "
        f"{len(tables['stage_tensors'])} tensors ({mismatches} mismatches), {len(preds)} "
        f"predictions; gpu_ms median {statistics.median(gpu_ms):.4f} ms "
        f"(min {min(gpu_ms):.4f}, max {max(gpu_ms):.4f}); gpu_mem_bytes "
        f"{ev[-1]['gpu_mem_bytes']}; device {ev[0]['device']}; segments "
        f"{exporter.segments_written}"
    )
    return bool(ok)


def measure(cp: Any, root: Path, on_gpu: bool, logging: bool, n: int, reps: int) -> float:
    """Median µs per record of the logging calls (and probe calls) for one configuration."""
    from logging_backend.capture.batch import InMemoryExporter
    from logging_backend.capture.gpu_probe import GpuProbe
    from logging_backend.capture.stage import NullStageLog, StageLog

    probe = GpuProbe.create("gpu" if on_gpu else "cpu", 0)
    log = (
        StageLog.from_triton_args(_args(root), exporter=InMemoryExporter(), gpu=probe)
        if logging
        else NullStageLog()
    )
    xp = cp if on_gpu else np
    rng = np.random.default_rng(2)
    xs = [xp.asarray(rng.standard_normal((64, 45)).astype(np.float32)) for _ in range(16)]
    ps = [xp.asarray(rng.dirichlet([1, 1, 1], 64).astype(np.float32)) for _ in range(16)]
    perf = time.perf_counter_ns
    medians = []
    for _ in range(reps):
        samples = []
        for i in range(n):
            x, p = xs[i % 16], ps[i % 16]
            t0 = perf()
            with log.request(f"r{i}", rows=64) as rec:
                rec.input("FEATURES", x)
                span = probe.start()
                rec.gpu_time(probe.stop(span))
                rec.output("PROBS", p)
                rec.predictions("mlp", p)
            samples.append(perf() - t0)
        medians.append(statistics.median(samples) / 1000)
        log.force_flush(30)
    log.close(30)
    return statistics.median(medians)


def main(argv: list[str] | None = None) -> int:
    """Run both checks; exit 1 when the correctness check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args(argv)
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if opts.out:
            opts.out.write_text("\n".join(lines) + "\n")

    import cupy as cp
    import pyarrow

    props = cp.cuda.runtime.getDeviceProperties(0)
    emit(
        f"# command: python3 -m bench.gpu_stage_log {' '.join(argv or sys.argv[1:])}; "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    )
    emit(
        f"# GPU {props['name'].decode()}; python {sys.version.split()[0]}, numpy "
        f"{np.__version__}, cupy {cp.__version__}, pyarrow {pyarrow.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="stagelog-gpu-") as tmp:
        os.environ["STAGELOG_HOME"] = tmp
        os.environ["STAGELOG_FLUSH_MS"] = "50"
        os.environ.pop("STAGELOG_LOGGING", None)
        ok = check_correctness(cp, Path(tmp) / "check", opts.requests, emit)
        emit("request path, median us/record (64 rows: FEATURES in, PROBS out, 64 predictions):")
        for on_gpu in (False, True):
            for logging in (False, True):
                us = measure(cp, Path(tmp) / "bench", on_gpu, logging, opts.records, opts.repeats)
                arrays = "cupy " if on_gpu else "numpy"
                mode = "full" if logging else "off "
                emit(f"  arrays {arrays}  logging {mode}  {us:8.2f}")
    emit(f"result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
