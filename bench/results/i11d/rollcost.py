import sys, tempfile, time, resource
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, "/work/main")
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
cycles, req = 20, 200
tables = [flush_tables(req, 8, seed=c) for c in range(cycles)]
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    for t in tables:
        for name, parts in sorted(t.items()):
            client.insert_arrow(f"stagelog.{name}", pa.concat_tables(parts), settings={"async_insert": 0})
    time.sleep(3)
    for r in rollups.ROLLUPS:
        c0 = cpu(); w0 = time.perf_counter()
        n = rollups.run_once(client, (r,))
        print(f"{r.name:24s} ranges {n}  cpu {(cpu()-c0)*1e3:7.1f} ms = {(cpu()-c0)/(cycles*req)*1e6:6.1f} us/request  wall {(time.perf_counter()-w0)*1e3:.0f} ms", flush=True)
    c0 = cpu(); rollups.run_once(client); print(f"{'nothing new (all)':24s} cpu {(cpu()-c0)*1e3:7.1f} ms")
