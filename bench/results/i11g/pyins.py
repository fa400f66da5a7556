import time, tempfile, statistics
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
store.migrate(client)
conn = client._backend._handle.conn
tabs = [{t: pa.concat_tables(p) for t, p in flush_tables(380, 8, seed=s).items()} for s in range(2)]
res = {"insert_arrow": [], "Python()": []}
for rep in range(8):
    for how in res:
        tot = 0.0
        for table, data in sorted(tabs[rep % 2].items()):
            tok = f"{how}-{rep}-{table}-{time.time()}"
            a = time.process_time()
            if how == "insert_arrow":
                client.insert_arrow(f"stagelog.{table}", data, settings={"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": tok})
            else:
                globals()["_arrow_data"] = data
                cols = ", ".join(f"`{c}`" for c in data.column_names)
                conn.query(f"INSERT INTO stagelog.{table} ({cols}) SELECT {cols} FROM Python(_arrow_data) SETTINGS async_insert=0, insert_deduplicate=1, insert_deduplication_token='{tok}'")
            tot += time.process_time() - a
            time.sleep(0.05)
        res[how].append(tot)
for how, v in res.items():
    print(f"{how:<14} {statistics.median(v)*1e3:7.1f} ms process CPU for one cycle of 380 requests (3 inserts), runs {[round(x*1e3) for x in v]}")
print(client.query("SELECT table, count() FROM system.parts WHERE database='stagelog' AND active AND table IN ('stage_events','stage_tensors','predictions') GROUP BY table").result_rows)
print(client.query("SELECT count() FROM stagelog.stage_events").result_rows)
