import time, tempfile, os, statistics
from pathlib import Path
import pyarrow as pa
from logging_backend import store
tmp = tempfile.mkdtemp(dir="/tmp/exp")
client = store.connect(f"chdb://{Path(tmp)/'ch'}")
client.command("CREATE DATABASE IF NOT EXISTS x")
client.command("CREATE TABLE x.n (a UInt64, s String) ENGINE = Null")
client.command("CREATE TABLE x.m (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
client.command("CREATE TABLE x.mem (a UInt64, s String) ENGINE = Memory")
t1 = pa.table({"a": pa.array([1], pa.uint64()), "s": pa.array(["x"])})
conn = None
def measure(label, fn, n=40):
    fn()
    c = []
    for _ in range(n):
        a = time.process_time(); fn(); c.append(time.process_time() - a)
    print(f"{label:<40} {statistics.median(c)*1e3:7.2f} ms CPU (median of {n})", flush=True)
measure("client.query SELECT 1", lambda: client.query("SELECT 1"))
measure("client.command SELECT 1", lambda: client.command("SELECT 1"))
measure("insert_arrow Null 1 row", lambda: client.insert_arrow("x.n", t1))
measure("insert_arrow Memory 1 row", lambda: client.insert_arrow("x.mem", t1))
measure("insert_arrow MergeTree 1 row", lambda: client.insert_arrow("x.m", t1))
measure("command INSERT VALUES MergeTree", lambda: client.command("INSERT INTO x.m VALUES (1, 'x')"))
measure("command INSERT VALUES Null", lambda: client.command("INSERT INTO x.n VALUES (1, 'x')"))
