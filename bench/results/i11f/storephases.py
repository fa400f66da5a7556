"""Where the embedded store's CPU goes at the collector's cadence: inserts, idle/merges, rollups."""
import sys, time, tempfile
from pathlib import Path
sys.path.insert(0, "/work/main")
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups

requests, rows, cycles = 200, 8, 20
tables_per_cycle = [flush_tables(requests, rows, seed=c) for c in range(cycles)]
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(client)
    settings = {"async_insert": 0, "insert_deduplicate": 1}
    ins = {}; between = 0.0
    pt = time.process_time
    t_start = pt()
    for tables in tables_per_cycle:
        started = time.monotonic()
        for table, parts in sorted(tables.items()):
            c0 = pt()
            client.insert_arrow(f"stagelog.{table}", pa.concat_tables(parts), settings=settings)
            ins[table] = ins.get(table, 0.0) + pt() - c0
        c0 = pt()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        between += pt() - c0
    total_req = requests * cycles
    by = {}
    for r in rollups.ROLLUPS:
        c0 = pt()
        rollups.run_once(client, (r,))
        by[r.name if hasattr(r, "name") else str(r)] = pt() - c0
    c0 = pt(); time.sleep(10); settle = pt() - c0
    print("rows per cycle", {t: sum(p.num_rows for p in ps) for t, ps in tables_per_cycle[0].items()})
    for t, v in sorted(ins.items()):
        print(f"insert {t:16s} {v/total_req*1e6:7.1f} us/req ({v/cycles*1e3:.1f} ms per insert, all threads)")
    print(f"between inserts (merges, background) {between/total_req*1e6:7.1f} us/req")
    for k, v in by.items():
        print(f"rollup {k:30s} {v/total_req*1e6:7.1f} us/req")
    print(f"settle 10 s {settle*1e3:.0f} ms")
    print(f"total {(pt()-t_start)/total_req*1e6:.1f} us/req")
