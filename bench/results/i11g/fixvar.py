import time, tempfile, statistics, sys
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
big = {t: pa.concat_tables(p) for t, p in flush_tables(200, 8, seed=1).items()}
base = {"async_insert": 0, "insert_deduplicate": 1}
variants = {
  "base": {},
  "nodedup": {"insert_deduplicate": 0},
  "threads1": {"max_threads": 1, "max_insert_threads": 1},
  "noparallelparse": {"input_format_parallel_parsing": 0},
  "optimize_on_insert0": {"optimize_on_insert": 0},
  "noskipidx": {"materialize_skip_indexes_on_insert": 0},
  "nostats": {"materialize_statistics_on_insert": 0},
  "all": {"input_format_parallel_parsing": 0, "max_threads": 1, "optimize_on_insert": 0},
}
table = sys.argv[1] if len(sys.argv) > 1 else "stage_events"
t = big[table]
res = {k: [] for k in variants}
for rep in range(10):
    for name, extra in variants.items():
        a = time.process_time()
        try:
            client.insert_arrow(f"stagelog.{table}", t, settings={**base, **extra, "insert_deduplication_token": f"{name}-{rep}-{time.time()}"})
        except Exception as e:
            print(name, "failed", str(e)[:200]); res[name].append(float("nan")); continue
        res[name].append(time.process_time() - a)
        time.sleep(0.05)
for name, c in res.items():
    print(f"{table} {t.num_rows} rows {name:<22} {statistics.median(c)*1e3:6.1f} ms process CPU")
