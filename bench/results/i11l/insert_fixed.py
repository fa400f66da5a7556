"""EXPERIMENT: chDB CPU of one insert per table vs its size (requests per insert): fixed + per-request parts.
Run: .venv/bin/python bench/results/i11l/insert_fixed.py [SIZES] [INSERTS] [SETTINGS_JSON]"""
import json, resource, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store

sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "100,400,1600").split(",")]
inserts = int(sys.argv[2]) if len(sys.argv) > 2 else 6
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
settings = {"async_insert": 0, "insert_deduplicate": 1, **extra}
print(f"# settings {settings}")
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(client)
    client.command("SYSTEM STOP MERGES")  # the insert alone, not the merges it leads to
    flt0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for size in sizes:
        batches = [{t: pa.concat_tables(p) for t, p in flush_tables(size, 8, seed=s).items()} for s in range(inserts)]
        per = {}
        for tables in batches:
            for table, data in sorted(tables.items()):
                time.sleep(0.2)
                c0 = time.process_time()
                store.insert_arrow(client, f"stagelog.{table}", data, settings=settings)
                time.sleep(0.3)  # background work of the insert (its pool threads)
                per.setdefault(table, []).append((time.process_time() - c0) * 1e3)
        tot = 0.0
        line = []
        flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for table, ms in sorted(per.items()):
            med = statistics.median(ms); tot += med
            line.append(f"{table} {med:6.1f} ms")
        print(f"{size:6d} requests/insert: " + ", ".join(line) + f"; all {tot:6.1f} ms = {tot*1e3/size:6.1f} us/request; page faults so far {flt - flt0}")
    store.close_all()
