"""One process, interleaved: what each materialized view adds to the chDB insert CPU (process
time, every chDB thread) of one 2 s poll's rows per table (REQ requests of batch 8, the six
stages' flushes encoded by capture.encode and concatenated as the shipper does). For each
source table: the insert with every view attached ("all"), with one view detached
("-<view>"), and with none ("none"). Views are detached and attached outside the timed part.

Run: .venv/bin/python bench/results/i11i/mvab.py [REQ] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1800
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
tmp = tempfile.mkdtemp(prefix="mvab-")
client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
store.migrate(client)
TABLES = ("stage_events", "stage_tensors", "predictions")
data = {t: pa.concat_tables(p) for t, p in flush_tables(req, 8, seed=1).items() if t in TABLES}
views = {}
for name, deps in client.query(
    "SELECT name, dependencies_table FROM system.tables WHERE database = 'stagelog'"
).result_rows:
    if name in TABLES:
        views[name] = list(deps)
print("# views per source table:", views)
k = 0


def insert(name):
    global k
    k += 1
    store.insert_arrow(client, f"stagelog.{name}", data[name],
                       {"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": f"t-{k}"})


def detach(vs):
    for v in vs:
        client.command(f"DETACH TABLE stagelog.{v}")


def attach(vs):
    for v in vs:
        client.command(f"ATTACH TABLE stagelog.{v}")


res = {}
for r in range(rounds + 1):
    for name in TABLES:
        ways = ["all"] + [f"-{v}" for v in views.get(name, [])] + ["none"]
        if r % 2:
            ways = ways[::-1]
        for way in ways:
            off = views.get(name, []) if way == "none" else ([way[1:]] if way.startswith("-") else [])
            detach(off)
            a = time.process_time()
            insert(name)
            spent = time.process_time() - a
            attach(off)
            if r:  # round 0 warms
                res.setdefault((name, way), []).append(spent)
            time.sleep(0.05)
print(f"# {req} requests (batch 8) per insert, {rounds} interleaved rounds; process CPU ms per insert (median), ratio to all")
for name in TABLES:
    base = statistics.median(res[(name, "all")])
    print(f"{name} ({data[name].num_rows} rows): all {base * 1e3:.1f} ms = {base * 1e6 / req:.1f} us per request")
    for (n, way), v in res.items():
        if n == name and way != "all":
            m = statistics.median(v)
            print(f"   {way:36s} {m * 1e3:7.1f} ms ({m / base:.2f})  saves {(base - m) * 1e6 / req:6.1f} us per request")
