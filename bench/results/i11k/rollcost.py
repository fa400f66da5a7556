"""EXPERIMENT: CPU of each batch rollup over N requests (bench.store_cost's data)."""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups
requests, cycles = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(client)
    for c in range(cycles):
        for table, parts in sorted(flush_tables(requests, 8, seed=c).items()):
            store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts), settings={"async_insert": 0})
    time.sleep(3)
    total = requests * cycles
    for r in rollups.ROLLUPS:
        t0 = time.process_time(); w0 = time.monotonic()
        rollups.run_once(client, (r,))
        cpu = time.process_time() - t0
        print(f"{r.name:24s} {cpu / total * 1e6:7.1f} us CPU/request  {time.monotonic() - w0:6.2f} s wall")
    store.close_all()
