"""The embedded store's CPU per request for one flush of the whole pipeline, by variant.

Encodes ``--requests`` requests of the six stages (``bench.flush_cost`` records, ``--rows``
events each, arrows stored once) with :mod:`logging_backend.capture.encode` and inserts every
table into a migrated chDB store the way the collector does (``insert_arrow``, one insert per
table, ``async_insert=0``), ``--repeats`` times; reports process CPU (all of chDB's threads)
per request, median. Variants:

- ``python``:  predictions encoded in Python (the default path), inserted as rows.
- ``mv``:      predictions of the members made by the store, by a materialized view over the
  ``PROBS`` output rows of ``stage_tensors`` in the same insert (the aggregate's stay Python:
  its decisions are another tensor); the Python encode of those rows is saved.
- ``none``:    no predictions at all (the floor of both).

Also: the Python encode time per request of the predictions rows (what ``mv`` saves).

Run: ``.venv/bin/python -m bench.insert_cost [--requests 800] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from bench.flush_cost import CLASSES, records
from bench.machine import cpu_model
from logging_backend import store
from logging_backend.capture import encode

STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
MEMBER_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.bench_member_predictions_mv
TO stagelog.predictions AS
SELECT ts, request_id, toUInt32(r - 1) AS row, stage, toString(stage) AS model, model_version,
       mapFromArrays(['legit', 'card_fraud', 'account_takeover'], p) AS class_probs,
       p AS probs,
       ['legit', 'card_fraud', 'account_takeover'][indexOf(p, arrayMax(p))] AS predicted_class,
       '' AS decision
FROM stagelog.stage_tensors
ARRAY JOIN
    arrayMap(i -> arraySlice(values_f32, (i - 1) * shape[2] + 1, shape[2]),
             range(1, toUInt64(shape[1]) + 1)) AS p,
    range(1, toUInt64(shape[1]) + 1) AS r
WHERE direction = 'output' AND name = 'PROBS' AND stage IN ('mlp', 'forest', 'logreg')
"""


def flush_tables(requests: int, rows: int, seed: int) -> dict[str, list[pa.Table]]:
    """Per stage's flush, its tables (as the six stub processes would spool them)."""
    out: dict[str, list[pa.Table]] = {}
    for stage in STAGES:
        kind = "mlp" if stage in ("forest", "logreg") else stage
        batch = records(kind, requests, rows, arrows=True, seed=seed)
        for rec in batch:  # members other than mlp: their own stage name
            rec.logger.identity = type(rec.logger.identity)(
                stage, "1", "2.51", "ab" * 32, f"{stage}_0"
            )
            rec.preds = [(stage if m == "mlp" else m, p, d) for m, p, d in rec.preds]
        for table, data in encode.encode(batch, class_names=CLASSES).items():
            out.setdefault(table, []).append(data)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines = [
        f"# command: python -m bench.insert_cost --requests {args.requests} --rows {args.rows}"
        f" --repeats {args.repeats}",
        f"# {cpu_model()}; {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        "# chDB process CPU per request (all threads), one insert per table per flush",
    ]
    # Python cost of the predictions rows of one flush: encode with and without them
    batch = records("mlp", args.requests, args.rows, arrows=True)
    encode.encode(batch, class_names=CLASSES)  # warm-up: pyarrow's first calls cost ~0.3 s
    t0 = time.thread_time_ns()
    for _ in range(args.repeats):
        encode.encode(batch, class_names=CLASSES)
    with_preds = (time.thread_time_ns() - t0) / args.repeats
    for rec in batch:
        rec.preds = []
    t0 = time.thread_time_ns()
    for _ in range(args.repeats):
        encode.encode(batch, class_names=CLASSES)
    without = (time.thread_time_ns() - t0) / args.repeats
    lines.append(
        f"python encode of one member's predictions rows: "
        f"{(with_preds - without) / args.requests / 1000:.2f} us/request"
    )
    print(lines[-1], flush=True)
    for variant in ("python", "mv", "none"):
        with tempfile.TemporaryDirectory() as tmp:
            client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
            store.migrate(client)
            if variant == "mv":
                client.command(MEMBER_MV)
            samples = []
            for rep in range(args.repeats):
                tables = flush_tables(args.requests, args.rows, seed=rep)
                if variant == "mv":
                    tables["predictions"] = [
                        t for t in tables["predictions"] if t["stage"][0].as_py() == "aggregate"
                    ]
                elif variant == "none":
                    tables.pop("predictions")
                t0 = time.process_time()
                for table, parts in tables.items():
                    client.insert_arrow(
                        f"stagelog.{table}", pa.concat_tables(parts),
                        settings={"async_insert": 0},
                    )  # fmt: skip
                samples.append(time.process_time() - t0)
            n = client.query("SELECT count() FROM stagelog.predictions").result_rows[0][0]
            per = statistics.median(samples) / args.requests * 1e6
            lines.append(f"{variant:<7} {per:8.1f} us CPU/request   predictions rows {n}")
            print(lines[-1], flush=True)
            store.close_all()
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
