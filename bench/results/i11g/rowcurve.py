import time, tempfile, statistics, sys
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
big = {t: pa.concat_tables(p) for t, p in flush_tables(800, 8, seed=1).items()}
settings = {"async_insert": 0, "insert_deduplicate": 1}
for table in ("stage_events", "stage_tensors", "predictions"):
    full = big[table]
    for n in (1, 100, 1000, 4000):
        if n > full.num_rows: continue
        t = full.slice(0, n)
        c = []; th = []
        for i in range(12):
            a = time.process_time(); b = time.thread_time()
            client.insert_arrow(f"stagelog.{table}", t, settings={**settings, "insert_deduplication_token": f"{table}-{n}-{i}-{time.time()}"})
            c.append(time.process_time() - a); th.append(time.thread_time() - b)
            time.sleep(0.05)
        print(f"{table:<14} rows {n:5d}: process {statistics.median(c)*1e3:6.1f} ms  thread {statistics.median(th)*1e3:6.1f} ms  bytes {t.nbytes}", flush=True)
