"""What each rollup of the collector's batch job (store.rollups) costs, in chDB process CPU
(every thread) per request rolled up. A migrated chDB store; every round inserts CYCLES polls of
REQ requests (batch 8; the six stages' flushes encoded by capture.encode, as bench.store_cost),
then runs each rollup alone over the new rows (order alternating by round), timed.

Run: .venv/bin/python bench/results/i11i/rollab.py [REQ] [CYCLES] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 10
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
client = store.connect(f"chdb://{Path(tempfile.mkdtemp(prefix='rollab-')) / 'ch'}")
store.migrate(client)
polls = [flush_tables(req, 8, seed=c) for c in range(cycles)]
res = {}
k = 0
for r in range(rounds + 1):
    ins = 0.0
    for tables in polls:
        for table, parts in sorted(tables.items()):
            k += 1
            a = time.process_time()
            store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts),
                               {"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": f"t{k}"})
            ins += time.process_time() - a
    time.sleep(2)
    order = rollups.ROLLUPS if r % 2 == 0 else rollups.ROLLUPS[::-1]
    for ru in order:
        a = time.process_time()
        rollups.run_once(client, (ru,))
        spent = time.process_time() - a
        if r:
            res.setdefault(ru.name, []).append(spent)
    if r:
        res.setdefault("(inserts)", []).append(ins)
    time.sleep(1)
n = req * cycles
print(f"# {rounds} rounds of {cycles} polls x {req} requests (batch 8); chDB process CPU per request, median")
for name, v in res.items():
    print(f"{name:24s} {statistics.median(v) * 1e6 / n:7.1f} us per request   (min {min(v) * 1e6 / n:.1f}, max {max(v) * 1e6 / n:.1f})")
print("rollup rows:", client.query("SELECT table, sum(rows) FROM system.parts WHERE active AND database='stagelog' AND table LIKE '%rollup%' OR table IN ('request_index','stage_latency_1m') GROUP BY table ORDER BY table").result_rows)
