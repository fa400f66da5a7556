"""The collector's ingest rate (rows/s): spool segments -> ClickHouse (chDB), median of repeats.

Segments are made by the real stage logger and spool writer (``StageLog`` + ``SpoolExporter``)
for the six stages of the pipeline, with the tensor shapes the stages log (synthetic values):
per request one ``stage_events`` row per stage, every input/output/state tensor, and the
``predictions`` of the three members and the aggregate. Each repeat copies the same spool into
a fresh home and times ``Shipper.ship_all()`` on a fresh, migrated chDB store in a child process
(chDB allows one data path per process): reading segments, concatenating, inserting, deleting.

Run: ``.venv/bin/python -m bench.ingest [--requests 2000] [--rows 4] [--repeats 5]
[--out bench/out-ingest.txt]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_FEATURES = 45  # riskpipe.features.N_FEATURES
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")


def _args(home: Path, stage: str) -> dict[str, Any]:
    version = home / "repo" / stage / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "weights.bin").write_bytes(os.urandom(1 << 12))
    return {
        "model_name": stage,
        "model_version": "1",
        "model_repository": str(version.parent),
        "model_instance_name": f"{stage}_0",
        "model_config": json.dumps({"parameters": {}}),
    }


def make_spool(home: Path, requests: int, rows: int, seed: int = 7) -> dict[str, int]:
    """Log ``requests`` pipeline requests of ``rows`` events into ``home/spool``."""
    os.environ["STAGELOG_HOME"] = str(home)
    os.environ["STAGELOG_LOGGING"] = "on"
    from logging_backend.capture.exporter import SpoolExporter  # noqa: PLC0415 (env set first)
    from logging_backend.capture.stage import StageLog  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    logs = {
        s: StageLog.from_triton_args(_args(home, s), exporter=SpoolExporter(home / "spool"))
        for s in STAGES
    }
    for _ in range(requests):
        rid = str(uuid.UUID(int=int(rng.integers(0, 2**63))))
        ids = np.array([rid.encode()] * rows, dtype=object).reshape(rows, 1)
        raw = np.array(
            [
                json.dumps(
                    {
                        "event_id": f"e{rng.integers(1e9)}",
                        "card_id": f"c{rng.integers(500)}",
                        "amount": round(float(rng.gamma(2, 40)), 2),
                        "currency": "EUR",
                        "merchant_id": f"m{rng.integers(200)}",
                        "merchant_category": "grocery",
                        "country": "DE",
                        "channel": "pos",
                        "device_id": f"d{rng.integers(900)}",
                        "timestamp": "2026-11-26T09:00:00Z",
                        "card_age_days": int(rng.integers(1, 3000)),
                        "ip_risk": round(float(rng.random()), 4),
                    }
                ).encode()
                for _ in range(rows)
            ],
            dtype=object,
        ).reshape(rows, 1)
        features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
        members = {m: rng.dirichlet([1, 1, 1], size=rows).astype(np.float32)
                   for m in ("mlp", "forest", "logreg")}
        mean = np.mean(list(members.values()), axis=0)
        with logs["preprocess"].request(rid, rows=rows) as rec:
            rec.input("RAW", raw)
            rec.output("REQUEST_ID", ids)
            rec.output("PROCESSED", raw)
        with logs["features"].request(rid, rows=rows) as rec:
            rec.input("PROCESSED", raw)
            rec.state("card_state", {"txn_count": rng.integers(0, 50, rows),
                                     "mean_amount_eur": rng.gamma(2, 40, rows)})
            rec.output("FEATURES", features)
        for member, probs in members.items():
            with logs[member].request(rid, rows=rows) as rec:
                rec.input("FEATURES", features)
                rec.output("PROBS", probs)
                rec.predictions(model=member, probs=probs)
        with logs["aggregate"].request(rid, rows=rows) as rec:
            for member, probs in members.items():
                rec.input(f"{member.upper()}_PROBS", probs)
            rec.output("PROBABILITIES", mean)
            rec.output("DECISION", np.array([b"approve"] * rows, dtype=object).reshape(rows, 1))
            rec.predictions(model="aggregate", probs=mean, decisions=["approve"] * rows)
    for log in logs.values():
        log.close()
    segments = list((home / "spool").rglob("*.arrow"))
    return {"segments": len(segments), "bytes": sum(p.stat().st_size for p in segments)}


CHILD = """
import json, sys, time
from pathlib import Path
from logging_backend import store
from logging_backend.collector.shipper import Shipper
home = Path(sys.argv[1])
client = store.connect(f"chdb://{home / 'clickhouse'}")
store.migrate(client)
shipper = Shipper(client, home / "spool")
t0 = time.perf_counter()
rows = shipper.ship_all()
elapsed = time.perf_counter() - t0
counts = {t: int(client.command(f"SELECT count() FROM stagelog.{t}"))
          for t in ("stage_events", "stage_tensors", "predictions")}
print(json.dumps({"rows": rows, "seconds": elapsed, "inserts": shipper.stats.inserts,
                  "segments": shipper.stats.segments, "left": shipper.pending(),
                  "counts": counts}))
"""


def ship_once(template: Path, work: Path) -> dict[str, Any]:
    """Copy the template spool into a fresh home and ship it in a child process."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template / "spool", work / "spool")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(work)], cwd=REPO, capture_output=True, text=True,
        timeout=1200, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print per-repeat results and the median rows/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=4, help="events per request")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    lines = [
        f"# bench.ingest {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
        f"python {platform.python_version()} {platform.machine()} cpus={os.cpu_count()}",
        f"# command: python -m bench.ingest --requests {args.requests} --rows {args.rows} "
        f"--repeats {args.repeats}",
    ]
    with tempfile.TemporaryDirectory(prefix="stagelog-ingest-") as tmp:
        template = Path(tmp) / "template"
        made = make_spool(template, args.requests, args.rows)
        lines.append(f"# spool: {made['segments']} segments, {made['bytes']} bytes "
                     f"({args.requests} requests x {args.rows} rows, 6 stages)")
        rates = []
        for i in range(args.repeats):
            result = ship_once(template, Path(tmp) / "work")
            if result["left"]:
                raise SystemExit(f"repeat {i}: {result['left']} segments not shipped")
            rate = result["rows"] / result["seconds"]
            rates.append(rate)
            lines.append(
                f"repeat {i}: {result['rows']} rows in {result['seconds']:.3f} s = "
                f"{rate:,.0f} rows/s ({result['inserts']} inserts, {result['segments']} "
                f"segments; {json.dumps(result['counts'])})"
            )
    lines.append(f"median ingest rate: {statistics.median(rates):,.0f} rows/s "
                 f"(min {min(rates):,.0f}, max {max(rates):,.0f}, {args.repeats} repeats)")
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
