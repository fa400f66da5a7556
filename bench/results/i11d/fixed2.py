import sys, time, tempfile, resource, statistics, os
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, "/work/main")
from logging_backend import store
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime, r.ru_stime
tmp = tempfile.mkdtemp()
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
client.command("CREATE DATABASE IF NOT EXISTS stagelog")
client.command("CREATE TABLE stagelog.t1 (x UInt8) ENGINE=MergeTree ORDER BY x")
client.command("CREATE TABLE stagelog.tm (x UInt8) ENGINE=Memory")
data = pa.table({"x": pa.array([1], pa.uint8())})
import chdb
def loop(label, fn, n=int(os.environ.get("N", "30"))):
    u0, s0 = cpu(); w0 = time.perf_counter()
    for i in range(n): fn(i)
    u1, s1 = cpu(); w1 = time.perf_counter()
    print(f"{label:30s} user {(u1-u0)/n*1e3:6.2f} sys {(s1-s0)/n*1e3:6.2f} wall {(w1-w0)/n*1e3:6.2f} ms", flush=True)
loop("SELECT 1", lambda i: client.command("SELECT 1"))
loop("insert_arrow MergeTree", lambda i: client.insert_arrow("stagelog.t1", data))
loop("insert_arrow Memory", lambda i: client.insert_arrow("stagelog.tm", data))
loop("INSERT VALUES MergeTree", lambda i: client.command("INSERT INTO stagelog.t1 VALUES (1)"))
loop("INSERT VALUES Memory", lambda i: client.command("INSERT INTO stagelog.tm VALUES (1)"))
print(client.query("SELECT count() FROM system.parts WHERE table='t1' AND active").result_rows)
