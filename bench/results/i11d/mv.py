import sys, time, tempfile, resource, statistics
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench.insert_cost import flush_tables
from logging_backend import store

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

import pyarrow as pa
tables = [{k: pa.concat_tables(v, promote_options="permissive") for k, v in flush_tables(200, 8, seed=c).items()} for c in range(40)]
print({k: v.num_rows for k, v in tables[0].items()})
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    def run(label, table, n=10, settings=None, off=0):
        c = []; w = []
        for i in range(n):
            t = tables[(off + i) % 40][table]
            c0, w0 = cpu(), time.perf_counter()
            client.insert_arrow(f"stagelog.{table}", t, settings={"async_insert":0, "insert_deduplicate":1, "insert_deduplication_token": f"{label}-{i}-{time.time_ns()}", **(settings or {})})
            c.append(cpu()-c0); w.append(time.perf_counter()-w0)
        print(f"{label:40s} cpu ms/insert median {statistics.median(c)*1e3:7.2f}  wall {statistics.median(w)*1e3:7.2f}", flush=True)
    for t in ("stage_events","predictions","stage_tensors"):
        run(f"{t} all views", t)
    mvs = [r[0] for r in client.query("SELECT name FROM system.tables WHERE database='stagelog' AND engine='MaterializedView'").result_rows]
    print("mvs", mvs)
    deps = client.query("SELECT name, dependencies_table FROM system.tables WHERE database='stagelog' AND engine LIKE '%MergeTree' AND notEmpty(dependencies_table)").result_rows
    print(deps)
    run("stage_events no dedup", "stage_events", settings={"insert_deduplicate":0})
    ddl = {m: client.query(f"SELECT create_table_query FROM system.tables WHERE database='stagelog' AND name='{m}'").result_rows[0][0] for m in mvs}
    for m in mvs:
        client.command(f"DROP VIEW stagelog.{m}")
        run(f"stage_events without {m}", "stage_events")
        client.command(ddl[m])
    for m in mvs: client.command(f"DROP VIEW IF EXISTS stagelog.{m}")
    for t in ("stage_events","predictions","stage_tensors"):
        run(f"{t} no views", t)
