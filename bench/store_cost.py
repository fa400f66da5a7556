"""The embedded store's CPU per request at the collector's cadence, by store variant.

Where ``bench.insert_cost`` times one large insert, this one follows the collector: every cycle
is one insert per table of ``--requests`` requests of the six stages (``bench.flush_cost``
records, ``--rows`` events each, arrows stored once, the real encoder), ``--cycles`` cycles back
to back, then ``--settle`` seconds for the background merges the inserts started. It reports the
chDB process's CPU (every thread: inserts, materialized views, merges) per request over the
whole time, and how many active parts are left. Each variant runs in a fresh process and store:

- ``current``:     the migrations as they are; every rollup made by the batch job
  (``store.rollups.run_once``, migrations 0090 and 0092) once at the end, its CPU included (in
  service it runs every minute: the same rows, in fewer, larger ranges).
- ``event-views``: current, but ``request_index`` and ``stage_latency_1m`` made by their
  materialized views on every ``stage_events`` insert (how it was before 0092).
- ``views``:       the hourly rollups made by migration 0072's materialized views on every
  insert and the two views of ``event-views`` (how it was before 0090), no batch job.
- ``no-views``:    no materialized view and no rollup job at all (the floor).
- ``no-preds``:    current, without the ``predictions`` rows.
- ``merge-base-5``: current with ClickHouse's default ``merge_selector_base = 5`` on every
  stagelog MergeTree table again (migration 0091 sets 20: fewer, wider merges).
- ``one-thread``:  current, each insert with ``max_threads = 1, max_insert_threads = 1`` (the
  engine's default is one thread per core for parsing and writing a part).
- ``lz4``:         current with every column of the three request tables that has ``CODEC(ZSTD)``
  (values, digests, errors, maps, timestamps) on ``LZ4`` instead (the engine's default codec).
- ``no-bloom``:    current without the ``request_id`` bloom-filter index of the three request
  tables (``idx_request_id``, ``bloom_filter(0.001)``: about ten hashes per row and insert).
- ``bloom-01``:    current with that index as ``bloom_filter(0.01)`` (about seven hashes).
- ``no-stats``:    current with ``auto_statistics_types = ''`` on every stagelog MergeTree table
  (the engine's default, ``basic, uniq_v2``, builds column statistics on every merge).

Run: ``.venv/bin/python -m bench.store_cost [--variants current,no-rollups] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

VARIANTS = (
    "current",
    "event-views",
    "views",
    "no-views",
    "no-preds",
    "merge-base-5",
    "no-stats",
    "one-thread",
    "lz4",
    "no-bloom",
    "bloom-01",
)
REQUEST_TABLES = ("stage_events", "stage_tensors", "predictions")
NO_ROLLUP_JOB = ("views", "no-views")  # every other variant runs the batch rollup job
EVENT_VIEWS = ("request_index_mv", "stage_latency_1m_mv")  # on stage_events until 0092


def event_view_ddl() -> list[str]:
    """The last definitions of the two stage_events views 0092 dropped (0003's, 0085's)."""
    from logging_backend import store
    from logging_backend.store import ledger

    found: dict[str, str] = {}
    for migration in ledger.migrations(ledger.MIGRATIONS_DIR):
        for statement in store.split_statements(migration.sql):
            for view in EVENT_VIEWS:
                if "MATERIALIZED VIEW" in statement and f"stagelog.{view} " in statement:
                    found[view] = statement
    return [found[v] for v in EVENT_VIEWS]


def one_variant(variant: str, requests: int, rows: int, cycles: int, settle: float) -> dict:
    """Run one variant in this process; returns its figures."""
    from bench.insert_cost import flush_tables
    from logging_backend import store
    from logging_backend.store import ledger, rollups

    tables_per_cycle = [flush_tables(requests, rows, seed=c) for c in range(cycles)]
    with tempfile.TemporaryDirectory() as tmp:
        client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
        store.migrate(client)
        if variant == "views":
            client.command("DROP TABLE stagelog.rollup_progress")
            sql = (ledger.MIGRATIONS_DIR / "0072_hourly_rollups.sql").read_text(encoding="utf-8")
            for statement in [*store.split_statements(sql), *event_view_ddl()]:
                if "MATERIALIZED VIEW" in statement:
                    client.command(statement)
        elif variant in ("merge-base-5", "no-stats"):
            change = {
                "merge-base-5": "merge_selector_base = 5",
                "no-stats": "auto_statistics_types = ''",
            }[variant]
            for (name,) in client.query(
                "SELECT name FROM system.tables WHERE database = 'stagelog' "
                "AND engine LIKE '%MergeTree'"
            ).result_rows:
                client.command(f"ALTER TABLE stagelog.{name} MODIFY SETTING {change}")
        elif variant == "lz4":
            for table in REQUEST_TABLES:
                for name, typ, codec in client.query(
                    "SELECT name, type, compression_codec FROM system.columns "
                    f"WHERE database = 'stagelog' AND table = '{table}'"
                ).result_rows:
                    if "ZSTD" in codec:
                        delta = "Delta, " if "Delta" in codec else ""
                        client.command(
                            f"ALTER TABLE stagelog.{table} MODIFY COLUMN `{name}` {typ} "
                            f"CODEC({delta}LZ4)"
                        )
        elif variant in ("no-bloom", "bloom-01"):
            for table in REQUEST_TABLES:
                client.command(f"ALTER TABLE stagelog.{table} DROP INDEX idx_request_id")
                if variant == "bloom-01":
                    client.command(
                        f"ALTER TABLE stagelog.{table} ADD INDEX idx_request_id request_id "
                        "TYPE bloom_filter(0.01) GRANULARITY 1"
                    )
        elif variant == "event-views":
            for statement in event_view_ddl():
                client.command(statement)
        settings = {"async_insert": 0, "insert_deduplicate": 1}
        if variant == "one-thread":
            settings.update(max_threads=1, max_insert_threads=1)
        per_table: dict[str, float] = {}
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        for tables in tables_per_cycle:
            cycle_started = time.monotonic()
            for table, parts in sorted(tables.items()):
                if variant == "no-preds" and table == "predictions":
                    continue
                t0 = time.thread_time()
                store.insert_arrow(
                    client, f"stagelog.{table}", pa.concat_tables(parts), settings=settings
                )  # the collector's way (shipper._insert_part)
                per_table[table] = per_table.get(table, 0.0) + time.thread_time() - t0
            # the collector's cadence: one cycle a second
            time.sleep(max(0.0, 1.0 - (time.monotonic() - cycle_started)))
        rollup0 = time.process_time()
        if variant == "event-views":  # the views made those two
            hourly = tuple(r for r in rollups.ROLLUPS if r.source != "stage_events")
            rollups.run_once(client, hourly)
        elif variant not in NO_ROLLUP_JOB:
            rollups.run_once(client)
        rollup_cpu = time.process_time() - rollup0
        time.sleep(settle)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        parts, disk = client.query(
            "SELECT count(), sum(bytes_on_disk) FROM system.parts "
            "WHERE database = 'stagelog' AND active"
        ).result_rows[0]
        store.close_all()
    total = requests * cycles
    return {
        "variant": variant,
        "cpu_us_per_request": cpu / total * 1e6,
        "insert_thread_us_per_request": {t: v / total * 1e6 for t, v in sorted(per_table.items())},
        # the batch rollups' run at the end, the whole process (merges running meanwhile too)
        "rollup_us_per_request": rollup_cpu / total * 1e6,
        "wall_s": wall,
        "active_parts": parts,
        "disk_bytes_per_request": disk / total,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every variant (each in a subprocess), ``--repeats`` times interleaved; print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=200, help="requests per cycle")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_variant(args.one, args.requests, args.rows, args.cycles, args.settle)))
        return 0
    from bench.machine import cpu_model

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    lines = [
        "# command: python -m bench.store_cost " + " ".join(argv or sys.argv[1:]),
        f"# {cpu_model()}; {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"# {args.cycles} cycles of {args.requests} requests x {args.rows} rows, one insert per "
        f"table per cycle, a cycle a second, then {args.settle:.0f} s of merges; chDB process CPU",
    ]
    print("\n".join(lines), flush=True)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(args.repeats):
        for variant in variants:
            out = subprocess.run(
                [sys.executable, "-m", "bench.store_cost", "--one", variant,
                 "--requests", str(args.requests), "--rows", str(args.rows),
                 "--cycles", str(args.cycles), "--settle", str(args.settle)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(res)
            line = (
                f"rep {rep} {variant:<11} {res['cpu_us_per_request']:8.1f} us CPU/request  "
                f"parts {res['active_parts']:4d}  disk {res.get('disk_bytes_per_request', 0):6.0f} "
                f"B/request  insert thread: "
                + ", ".join(f"{t} {v:.0f}" for t, v in res["insert_thread_us_per_request"].items())
                + f"  rollups {res['rollup_us_per_request']:.0f}"
            )
            lines.append(line)
            print(line, flush=True)
    lines.append("# median over repeats, us of chDB CPU per request (all threads)")
    base = None
    for variant in variants:
        med = statistics.median(r["cpu_us_per_request"] for r in results[variant])
        base = base or med
        lines.append(f"{variant:<11} {med:8.1f}  x first {med / base:.2f}")
        print(lines[-1], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
