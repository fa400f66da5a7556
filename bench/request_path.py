"""Request-path cost of the stage logger per record (median µs), logging full / summary / off.

One "record" is what a stage's ``execute`` adds for one request: ``log.request(...)`` as a
context manager plus the ``rec.input/output/state/predictions`` calls of that stage, with the
tensor set of a 64-row batch (shapes as in ``riskpipe``; values synthetic). The real spool
exporter and its flush thread run meanwhile (into a temporary ``STAGELOG_HOME``), as in a Triton
stub; its CPU time per record is reported separately (off the request path, but it shares the
GIL and the CPU with serving).

Stage ``empty`` is the ``with log.request(...)`` block alone (the record, its wall and thread
CPU clocks, the buffer append). ``us/call`` divides a record's cost by its calls of the record
API (``log.request`` plus the ``rec.*`` calls; a state mapping is one call).

Run: ``.venv/bin/python -m bench.request_path [--rows 64] [--records 2000] [--repeats 7]``
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
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from logging_backend.capture.exporter import SpoolExporter
from logging_backend.capture.stage import StageLog

N_FEATURES = 45  # riskpipe.features.N_FEATURES
MODES = ("off", "full", "summary", "sampled")
POOL = 32


def _stage_tensors(rows: int, rng: np.random.Generator) -> dict[str, Any]:
    """Synthetic tensors with the shapes and dtypes the stages log for one request."""
    raw = np.array(
        [
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "card_id": f"c{i % 17}",
                    "amount": round(float(rng.gamma(2, 40)), 2),
                    "currency": "EUR",
                    "merchant_id": f"m{i % 101}",
                    "merchant_category": "grocery",
                    "country": "DE",
                    "channel": "pos",
                    "device_id": f"d{i % 13}",
                    "timestamp": "2026-11-26T09:00:00Z",
                    "card_age_days": 400,
                    "ip_risk": 0.1,
                    "duplicate": False,
                    "imputed": [],
                }
            ).encode()
            for i in range(rows)
        ],
        dtype=object,
    ).reshape(rows, 1)
    probs = rng.dirichlet([1, 1, 1], size=rows).astype(np.float32)
    return {
        "request_id": np.array([b"5f0c3c9e-8d1e-4c55-9d5e-3c2b1a0f9e8d"] * rows, object).reshape(
            rows, 1
        ),
        "processed": raw,
        "features": rng.normal(size=(rows, N_FEATURES)).astype(np.float32),
        "card_state": {
            "card_id": np.array([f"c{i % 17}" for i in range(rows)], dtype=object),
            "txn_count": rng.integers(0, 50, rows),
            "mean_amount_eur": rng.gamma(2, 40, rows),
            "velocity_1h": rng.integers(0, 5, rows),
            "velocity_24h": rng.integers(0, 20, rows),
            "last_device_id": np.array([f"d{i % 13}" for i in range(rows)], dtype=object),
            "updated": np.ones(rows, dtype=bool),
        },
        "probs": probs,
    }


def _features_stage(log: Any, rid: str, rows: int, t: dict[str, Any]) -> None:
    with log.request(rid, rows=rows) as rec:
        rec.input("REQUEST_ID", t["request_id"])
        rec.input("PROCESSED", t["processed"])
        rec.state("card_state", t["card_state"])
        rec.output("FEATURES", t["features"])


def _member_stage(log: Any, rid: str, rows: int, t: dict[str, Any]) -> None:
    with log.request(rid, rows=rows) as rec:
        rec.input("REQUEST_ID", t["request_id"])
        rec.input("FEATURES", t["features"])
        rec.output("PROBS", t["probs"])
        rec.predictions(model="mlp", probs=t["probs"])


def _empty_stage(log: Any, rid: str, rows: int, t: dict[str, Any]) -> None:
    with log.request(rid, rows=rows):
        pass


STAGES = {"features": _features_stage, "mlp": _member_stage, "empty": _empty_stage}
# rec.* calls per record besides log.request (a state mapping is one call)
CALLS = {"features": 4, "mlp": 4, "empty": 0}


class TimedSpool(SpoolExporter):
    """The real spool exporter, timing its own work.

    Thread CPU time, not wall time: wall time would include waiting for the GIL while the
    request loop runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy_ns = 0
        self.records = 0

    def export(self, batch: Any) -> None:
        """Export and count."""
        t0 = time.thread_time_ns()
        super().export(batch)
        self.busy_ns += time.thread_time_ns() - t0
        self.records += sum(1 for item in batch if type(item).__name__ == "Record")


def _args(home: Path, stage: str, mode: str) -> dict[str, Any]:
    params = {}
    if mode != "full":
        params = {"logging_policy": mode, "logging_reason": "benchmark"}
    if mode == "sampled":
        params["sample_rate"] = "0.1"
    version = home / "repo" / stage / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "weights.bin").write_bytes(os.urandom(1 << 16))
    return {
        "model_name": stage,
        "model_version": "1",
        "model_repository": str(version.parent),
        "model_instance_name": f"{stage}_0",
        "model_config": json.dumps(
            {"parameters": {k: {"string_value": v} for k, v in params.items()}}
        ),
    }


def measure(stage: str, mode: str, rows: int, records: int, repeats: int) -> dict[str, Any]:
    """Median µs per record for one stage shape and logging mode."""
    rng = np.random.default_rng(7)
    # distinct tensor sets, so that segment compression sees realistic (non-repeating) data
    pool = [_stage_tensors(rows, rng) for _ in range(POOL)]
    call = STAGES[stage]
    with tempfile.TemporaryDirectory(prefix="stagelog-bench-") as tmp:
        home = Path(tmp)
        os.environ["STAGELOG_HOME"] = str(home)
        os.environ["STAGELOG_LOGGING"] = "off" if mode == "off" else "on"
        exporter = TimedSpool(home / "spool")
        log = StageLog.from_triton_args(_args(home, stage, mode), exporter=exporter)
        ids = [str(uuid.UUID(int=int(rng.integers(0, 2**63)))) for _ in range(records)]
        for i, rid in enumerate(ids[:200]):  # warm-up
            call(log, rid, rows, pool[i % POOL])
        per_rep = []
        perf = time.perf_counter_ns
        for _ in range(repeats):
            samples = []
            for i, rid in enumerate(ids):
                tensors = pool[i % POOL]
                t0 = perf()
                call(log, rid, rows, tensors)
                samples.append(perf() - t0)
            per_rep.append(statistics.median(samples) / 1000)
            log.force_flush(30)
        log.close(30)
        flushed = exporter.records
        flush_us = exporter.busy_ns / 1000 / flushed if flushed else 0.0
        segments = exporter.segments_written
        spool_bytes = sum(p.stat().st_size for p in (home / "spool").rglob("*") if p.is_file())
    return {
        "stage": stage,
        "mode": mode,
        "rows": rows,
        "records_per_repeat": records,
        "repeats": repeats,
        "median_us_per_record": statistics.median(per_rep),
        "repeat_medians_us": [round(x, 2) for x in per_rep],
        "flush_thread_cpu_us_per_record": round(flush_us, 1),
        "records_flushed": flushed,
        "segments": segments,
        "spool_bytes_per_record": round(spool_bytes / flushed) if flushed else 0,
    }


def timer_overhead_us(n: int = 20000) -> float:
    """Median cost of the per-record timing itself (subtract mentally; it is ~0.1 µs)."""
    perf = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = perf()
        samples.append(perf() - t0)
    return statistics.median(samples) / 1000


def main(argv: list[str] | None = None) -> int:
    """Print the table (and JSON lines with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stages", default="features,mlp")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true", help="also print one JSON line per case")
    parser.add_argument("--out", type=Path, help="also write the output to this file")
    opts = parser.parse_args(argv)
    lines: list[str] = []

    def emit(line: str) -> None:
        """Print, and keep the raw output in --out."""
        lines.append(line)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if opts.out:
            opts.out.write_text("\n".join(lines) + "\n")

    args = " ".join(argv if argv is not None else sys.argv[1:])
    emit(f"# command: .venv/bin/python -m bench.request_path {args}")
    emit(
        f"# stagelog request-path cost per record; python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    )
    emit(f"# timer overhead per sample: {timer_overhead_us():.2f} us (included below)")
    emit(
        f"{'stage':<9} {'mode':<8} {'rows':>4} {'median us/rec':>13} {'reps (us)':<44} "
        f"{'flush CPU us/rec':>16} {'spool B/rec':>11} {'us/call':>7}"
    )
    for stage in opts.stages.split(","):
        for mode in opts.modes.split(","):
            r = measure(stage, mode, opts.rows, opts.records, opts.repeats)
            reps = " ".join(f"{x:.1f}" for x in r["repeat_medians_us"])
            emit(
                f"{stage:<9} {mode:<8} {opts.rows:>4} {r['median_us_per_record']:>13.1f} "
                f"{reps:<44} {r['flush_thread_cpu_us_per_record']:>16.1f} "
                f"{r['spool_bytes_per_record']:>11} "
                f"{r['median_us_per_record'] / (1 + CALLS[stage]):>7.2f}"
            )
            if opts.json:
                emit(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
