"""Insert loop into chDB for perf: N cycles of 200 requests' tables, one insert per table."""
import sys, time, tempfile, os, threading
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
cycles = int(sys.argv[1]); table_only = sys.argv[2] if len(sys.argv) > 2 else ""
tables = [flush_tables(200, 8, seed=c) for c in range(4)]
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
print("pid", os.getpid(), "ready", flush=True)
time.sleep(float(os.environ.get("WAIT", "0")))
settings = {"async_insert": 0, "insert_deduplicate": 1}
c0 = time.process_time(); t0 = time.monotonic()
per = {}
for c in range(cycles):
    for table, parts in sorted(tables[c % 4].items()):
        if table_only and table != table_only: continue
        tt = time.thread_time()
        a = time.process_time()
        client.insert_arrow(f"stagelog.{table}", pa.concat_tables(parts), settings=settings)
        per.setdefault(table, [0.0, 0.0])
        per[table][0] += time.thread_time() - tt
        per[table][1] += time.process_time() - a
    time.sleep(0.3)
print("cycles", cycles, "process cpu ms/cycle", (time.process_time()-c0)/cycles*1e3)
for t, (th, pr) in per.items():
    print(f"{t}: insert thread {th/cycles*1e3:.1f} ms, process during insert {pr/cycles*1e3:.1f} ms")
