import sys, time, tempfile, statistics, os
from pathlib import Path
sys.path.insert(0, "/work/main")
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
tb = flush_tables(200, 8, seed=1)
data = pa.concat_tables(tb["stage_events"]).slice(0, 1)
pt = time.process_time
d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
client = store.connect(f"chdb://{Path(d) / 'ch'}")
store.migrate(client)
time.sleep(2)
cpus = []
for c in range(40):
    c0 = pt()
    client.insert_arrow("stagelog.stage_events", data, settings={"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": f"x{c}"})
    cpus.append(pt() - c0)
    time.sleep(0.25)
t = os.times()
print("one-row insert cpu ms median", round(statistics.median(cpus)*1e3, 1), "first", round(cpus[0]*1e3,1), "last", round(cpus[-1]*1e3,1))
