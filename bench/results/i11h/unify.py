"""What unifying a poll's dictionaries costs (store.insert_arrow does it before each insert; through
the collector's counting wrapper twice): six flushes of 300 requests per table, 30 rounds,
process CPU, first on the concatenated pieces, then on an already unified table.
Run: .venv/bin/python bench/results/i11h/unify.py"""
import statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pyarrow as pa
from bench.insert_cost import flush_tables
tabs = flush_tables(300, 8, seed=1)
for name in ("stage_events", "stage_tensors", "predictions"):
    t = pa.concat_tables(tabs[name] * 6)
    u = t.unify_dictionaries()
    a, b = [], []
    for _ in range(30):
        t0 = time.process_time(); t.unify_dictionaries(); a.append(time.process_time() - t0)
        t0 = time.process_time(); u.unify_dictionaries(); b.append(time.process_time() - t0)
    print(f"{name:14s} {t.num_rows:6d} rows: unify {statistics.median(a) * 1e3:.2f} ms, "
          f"again {statistics.median(b) * 1e3:.2f} ms")
