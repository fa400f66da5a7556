"""What one spool segment costs the stage's flush thread, measured in isolation (no server).

Records have the shapes of ``bench.request_path`` (features and member stages); the real
``SpoolExporter`` encodes and writes them. Printed:

1. per segment, the time of each step of ``write_segment`` (mkdir, file open, IPC stream,
   ``write_table``, close, rename) in ``--dir`` (default: a temporary folder), with small
   flushes of 2 records each;
2. ``write_table`` alone into memory per codec (zstd, lz4, none), same tables;
3. flush-thread CPU per record (thread CPU time) at 20 and 100 records per flush, zstd and none.

Usage: ``python -m bench.segment_cost [--dir /path/on/the/disk/of/STAGELOG_HOME]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import request_path as rp
from bench.overhead import header
from logging_backend.capture.stage import StageLog


def _logger(home: Path, stage: str, compression: str | None) -> tuple[object, rp.TimedSpool]:
    os.environ["STAGELOG_HOME"] = str(home)
    os.environ["STAGELOG_LOGGING"] = "on"
    os.environ["STAGELOG_FLUSH_MS"] = "600000"  # flushes only when asked
    exporter = rp.TimedSpool(home / "spool", compression=compression)
    log = StageLog.from_triton_args(rp._args(home, stage, "full"), exporter=exporter)
    log.force_flush(30)
    return log, exporter


def captured_tables(root: Path, rows: int, records: int, per_flush: int) -> list[tuple]:
    """The (table, pa.Table) pairs a features stage writes with ``per_flush`` records/flush."""
    rng = np.random.default_rng(7)
    pool = [rp._stage_tensors(rows, rng) for _ in range(32)]
    log, exporter = _logger(Path(tempfile.mkdtemp(dir=root)), "features", None)
    tables: list[tuple] = []
    exporter.write_segment = lambda table, data: tables.append((table, data))  # type: ignore
    for i in range(records):
        rp.STAGES["features"](log, str(uuid.uuid4()), rows, pool[i % 32])
        if (i + 1) % per_flush == 0:
            log.force_flush(30)
    log.force_flush(30)
    return tables


def segment_steps(tables: list[tuple], root: Path) -> dict[str, float]:
    """Median µs per step of writing each table as a segment file under ``root``."""
    steps: dict[str, list[float]] = {
        k: [] for k in ("mkdir", "open", "stream", "write", "close", "rename")
    }
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    for k, (table, data) in enumerate(tables):
        folder = root / "spool" / table
        tmp, final = folder / f"s{k}.arrow.tmp", folder / f"s{k}.arrow"
        t0 = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        t1 = time.perf_counter()
        sink = pa.OSFile(str(tmp), "wb")
        t2 = time.perf_counter()
        writer = pa.ipc.new_stream(sink, data.schema, options=options)
        t3 = time.perf_counter()
        writer.write_table(data)
        t4 = time.perf_counter()
        writer.close()
        sink.close()
        t5 = time.perf_counter()
        os.rename(tmp, final)
        t6 = time.perf_counter()
        for key, value in zip(
            steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True
        ):
            steps[key].append(value * 1e6)
    return {key: statistics.median(values) for key, values in steps.items()}


def write_table_by_codec(tables: list[tuple]) -> dict[str, dict[str, float]]:
    """Median µs of ``write_table`` into memory per codec and table."""
    out: dict[str, dict[str, float]] = {}
    for codec in ("zstd", "lz4", None):
        options = pa.ipc.IpcWriteOptions(compression=codec)
        per: dict[str, list[float]] = {}
        for table, data in tables:
            t0 = time.perf_counter()
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, data.schema, options=options) as writer:
                writer.write_table(data)
            per.setdefault(table, []).append((time.perf_counter() - t0) * 1e6)
        out[str(codec)] = {table: statistics.median(v) for table, v in per.items()}
    return out


def flush_cpu_per_record(root: Path, stage: str, per_flush: int, codec: str | None) -> float:
    """Flush-thread CPU µs per record (best of 3) at ``per_flush`` records per flush."""
    best = float("inf")
    rng = np.random.default_rng(7)
    pool = [rp._stage_tensors(8, rng) for _ in range(32)]
    for _ in range(3):
        log, exporter = _logger(Path(tempfile.mkdtemp(dir=root)), stage, codec)
        exporter.busy_ns, exporter.records = 0, 0
        for i in range(400):
            rp.STAGES[stage](log, str(uuid.uuid4()), 8, pool[i % 32])
            if (i + 1) % per_flush == 0:
                log.force_flush(30)
        log.force_flush(30)
        best = min(best, exporter.busy_ns / 1000 / max(exporter.records, 1))
        log.close(30)
    return best


def main(argv: list[str] | None = None) -> int:
    """Print the three measurements."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.segment_cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=None, help="where segments are written")
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path(tempfile.mkdtemp(dir=args.dir))
    print(header(argv, prog="bench.segment_cost"))
    print(f"# segments written under {root}")
    tables = captured_tables(root, rows=8, records=200, per_flush=2)
    steps = segment_steps(tables, root)
    print(
        "1. write_segment steps, median us per segment (features stage, 2 records/flush, zstd): "
        + ", ".join(f"{k} {v:.0f}" for k, v in steps.items())
    )
    print("2. write_table into memory, median us per segment, by codec:")
    for codec, per in write_table_by_codec(tables).items():
        print(f"   {codec:<5} " + ", ".join(f"{t} {v:.0f}" for t, v in per.items()))
    print("3. flush-thread CPU us per record (rows 8, best of 3 x 400 records):")
    for stage in ("features", "mlp"):
        for per_flush in (20, 100):
            cells = [
                f"{codec}: {flush_cpu_per_record(root, stage, per_flush, codec):.0f}"
                for codec in ("zstd", None)
            ]
            print(f"   {stage:<9} {per_flush:>3} records/flush  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
