"""Flush-thread CPU per record of the columnar encoder, and of the segment write (v1 vs v2).

Builds the records the pipeline stages buffer for one request of ``--rows`` events (the
tensor sets of preprocess, features, a member and aggregate; synthetic values in the real
shapes and dtypes), ``--records`` requests per flush, and times, per stage, the encode alone
and encode + the spool layout's ``write_segment`` in each format (v1: one Arrow stream file per
table; v2: one file per flush). Thread CPU time, median of ``--repeats``.
(``bench/results/flush-cost-old-vs-new.txt`` compares with the per-record encoder it replaced.)

Run: ``.venv/bin/python -m bench.flush_cost [--rows 8] [--records 1000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import cpu_model
from logging_backend.capture.records import ModelIdentity, Policy
from logging_backend.capture.stage import StageLogger

N_FEATURES = 45
CLASSES = ("legit", "card_fraud", "account_takeover")
SOURCES = {
    "features": {"PROCESSED": ("preprocess", "PROCESSED")},
    "mlp": {"FEATURES": ("features", "FEATURES")},
    "aggregate": {
        "MLP_PROBS": ("mlp", "PROBS"),
        "FOREST_PROBS": ("forest", "PROBS"),
        "LOGREG_PROBS": ("logreg", "PROBS"),
    },
}


class _Processor:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def emit(self, item: Any) -> None:
        self.items.append(item)


def _logger(stage: str, arrows: bool) -> StageLogger:
    logger = StageLogger(ModelIdentity(stage, "1", "2.51", "ab" * 32, f"{stage}_0"), None, Policy())
    logger.processor = _Processor()
    logger.arrow_sources = SOURCES.get(stage, {}) if arrows else {}
    consumed = {"preprocess": {"PROCESSED"}, "features": {"FEATURES"}, "mlp": {"PROBS"}}
    logger.arrow_outputs = consumed.get(stage, set()) if arrows else set()
    return logger


def records(stage: str, n: int, rows: int, arrows: bool, seed: int = 0) -> list[Any]:
    """``n`` records of ``stage`` as its model.py makes them (values synthetic)."""
    rng = np.random.default_rng(seed)
    logger = _logger(stage, arrows)
    raw = np.array(
        [
            json.dumps(
                {"event_id": f"e{i}", "amount": 12.5, "currency": "EUR", "pad": "x" * 200}
            ).encode()
            for i in range(rows)
        ],
        dtype=object,
    ).reshape(rows, 1)
    for r in range(n):
        rid = f"req-{seed}-{r:08d}"
        with logger.request(rid, rows=rows) as rec:
            if stage == "preprocess":
                rec.input("RAW", raw)
                rec.output(
                    "REQUEST_ID", np.array([rid.encode()] * rows, dtype=object).reshape(-1, 1)
                )
                rec.output("PROCESSED", raw)
            elif stage == "features":
                rec.input("PROCESSED", raw)
                rec.state(
                    "card_state",
                    {
                        "card_id": np.array([f"c{i}" for i in range(rows)], dtype=object),
                        "txn_count": rng.integers(0, 50, rows),
                        "mean_amount_eur": rng.gamma(2, 40, rows),
                        "updated": np.ones(rows, dtype=bool),
                    },
                )
                rec.output("FEATURES", rng.normal(size=(rows, N_FEATURES)).astype(np.float32))
            elif stage == "mlp":
                rec.input("FEATURES", rng.normal(size=(rows, N_FEATURES)).astype(np.float32))
                probs = rng.dirichlet([1, 1, 1], size=rows).astype(np.float32)
                rec.output("PROBS", probs)
                rec.predictions("mlp", probs)
            else:
                member = [rng.dirichlet([1, 1, 1], size=rows).astype(np.float32) for _ in range(3)]
                for name, probs in zip(SOURCES["aggregate"], member, strict=True):
                    rec.input(name, probs)
                mean = np.mean(member, axis=0)
                decisions = np.array(["approve"] * rows, dtype=object)
                rec.output("PROBABILITIES", mean)
                rec.output("DECISION", decisions.reshape(-1, 1))
                rec.predictions("aggregate", mean, decisions)
    return logger.processor.items


def _time(fn: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        fn()
        samples.append(time.thread_time_ns() - t0)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    """Print (and with --out write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stages", default="preprocess,features,mlp,aggregate")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from logging_backend.capture import encode  # noqa: PLC0415
    from logging_backend.spool import layout  # noqa: PLC0415

    lines = [
        f"# command: python -m bench.flush_cost --rows {args.rows} --records {args.records} "
        f"--repeats {args.repeats}",
        f"# {cpu_model()}; {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        "# flush-thread CPU per record (us, median): capture.encode (columns: every input in"
        " full; arrows: inputs fed by a stage stored as digests), then + the segment write",
        "# (v1: one Arrow file per table; v2: one file per flush holding every table)",
        f"{'stage':<11}{'encoding':<9}{'encode':>9}{'+ v1 write':>12}{'+ v2 write':>12}"
        f"{'v2 bytes/rec':>13}",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp) / "spool"
        for stage in args.stages.split(","):
            for label, arrows in (("columns", False), ("arrows", True)):
                batch = records(stage, args.records, args.rows, arrows)
                encode.encode(batch, class_names=CLASSES)  # warm-up: pyarrow's first calls

                def enc(b=batch) -> None:
                    encode.encode(b, class_names=CLASSES)

                def v1(b=batch) -> None:
                    layout.write_segment(spool, encode.encode(b, class_names=CLASSES), fmt="v1")

                def v2(b=batch) -> None:
                    layout.write_segment(spool, encode.encode(b, class_names=CLASSES), fmt="v2")

                per = args.records * 1000
                e, w1 = _time(enc, args.repeats) / per, _time(v1, args.repeats) / per
                before = sum(p.stat().st_size for p in spool.glob("*.seg"))
                w2 = _time(v2, args.repeats) / per
                after = sum(p.stat().st_size for p in spool.glob("*.seg"))
                size = (after - before) / args.repeats / args.records
                lines.append(f"{stage:<11}{label:<9}{e:>9.2f}{w1:>12.2f}{w2:>12.2f}{size:>13.0f}")
                print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
