import sys, time, tempfile, resource, statistics
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, "/work/main")
from bench.insert_cost import flush_tables
from logging_backend import store
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
big = {k: pa.concat_tables(v, promote_options="permissive") for k, v in flush_tables(400, 8, seed=1).items()}
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    for m in ("request_index_mv","stage_latency_1m_mv"): client.command(f"DROP VIEW IF EXISTS stagelog.{m}")
    client.command("CREATE TABLE stagelog.t1 (x UInt8) ENGINE=MergeTree ORDER BY x SETTINGS non_replicated_deduplication_window = 10000")
    def run(label, table, data, n=10, dedup=1):
        c = []
        for i in range(n):
            c0 = cpu()
            client.insert_arrow(f"stagelog.{table}", data, settings={"async_insert":0, "insert_deduplicate":dedup, "insert_deduplication_token": f"{label}-{i}-{time.time_ns()}"})
            c.append(cpu()-c0)
        print(f"{label:40s} rows {data.num_rows:6d} cpu ms/insert median {statistics.median(c)*1e3:7.2f}", flush=True)
    run("t1", "t1", pa.table({"x": pa.array([1], pa.uint8())}))
    run("t1 nodedup", "t1", pa.table({"x": pa.array([1], pa.uint8())}), dedup=0)
    c0=cpu()
    for i in range(20): client.command("SELECT 1")
    print("SELECT 1 ms", (cpu()-c0)/20*1e3)
    for t in ("stage_events","predictions","stage_tensors"):
        for n in (1, 100, 1000, big[t].num_rows):
            run(t, t, big[t].slice(0, n))
    # try via raw chdb session directly
