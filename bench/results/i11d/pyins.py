import sys, time, tempfile, resource, statistics
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, "/work/main")
from bench.insert_cost import flush_tables
from logging_backend import store
import chdb
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
tables = [{k: pa.concat_tables(v, promote_options="permissive") for k, v in flush_tables(200, 8, seed=c).items()} for c in range(12)]
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    conn = client._backend._handle.conn if hasattr(client, "_backend") else None
    print(type(client), [a for a in dir(client) if "back" in a or "handle" in a][:10])
    conn = client._backend._handle.conn
    lock = client._backend._handle.lock
    res = {}
    for rep in range(12):
        for label in ("insert_arrow", "Python()"):
            for name in ("stage_events", "predictions", "stage_tensors"):
                data = tables[rep][name]
                tok = f"{label}-{rep}-{name}-{time.time_ns()}"
                c0 = cpu()
                if label == "insert_arrow":
                    client.insert_arrow(f"stagelog.{name}", data, settings={"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": tok})
                else:
                    cols = ", ".join(f"`{c}`" for c in data.column_names)
                    with lock:
                        conn.query(f"INSERT INTO stagelog.{name} ({cols}) SETTINGS async_insert = 0, insert_deduplicate = 1, insert_deduplication_token = '{tok}' SELECT {cols} FROM Python(data)")
                res.setdefault((label, name), []).append(cpu() - c0)
    for k, v in sorted(res.items()): print(k, f"{statistics.median(v)*1e3:.2f} ms")
    print(client.query("SELECT count() FROM stagelog.stage_events").result_rows)
