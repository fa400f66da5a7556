"""chDB CPU (every thread, merges included) per request for table-level MergeTree settings on
the three request tables: 12 cycles of 380 requests' rows, one insert per table a cycle, a cycle
every 0.5 s, then 6 s to settle. Each variant a fresh process and store; rounds interleaved.
Run: .venv/bin/python bench/results/i11g/tablesettings.py [rounds]"""
import json, subprocess, sys, tempfile, time, statistics
from pathlib import Path
VARIANTS = {
    "base": "",
    "no-mark-compression": "compress_marks = 0, compress_primary_key = 0",
    "no-sparse": "ratio_of_defaults_for_sparse_serialization = 1",
    "no-sparse+marks": "ratio_of_defaults_for_sparse_serialization = 1, compress_marks = 0, compress_primary_key = 0",
}
def one(name):
    import pyarrow as pa
    from bench.insert_cost import flush_tables
    from logging_backend import store
    tabs = [{t: pa.concat_tables(p) for t, p in flush_tables(380, 8, seed=s).items()} for s in range(3)]
    with tempfile.TemporaryDirectory(dir="/tmp/exp") as tmp:
        client = store.connect(f"chdb://{Path(tmp)/'ch'}")
        store.migrate(client)
        if VARIANTS[name]:
            for t in ("stage_events", "stage_tensors", "predictions"):
                client.command(f"ALTER TABLE stagelog.{t} MODIFY SETTING {VARIANTS[name]}")
        c0 = time.process_time()
        for c in range(12):
            for t, data in sorted(tabs[c % 3].items()):
                client.insert_arrow(f"stagelog.{t}", data, settings={"async_insert": 0, "insert_deduplicate": 1, "insert_deduplication_token": f"{c}-{t}"})
            time.sleep(0.5)
        time.sleep(6)
        cpu = time.process_time() - c0
        parts = client.query("SELECT count() FROM system.parts WHERE database='stagelog' AND active").result_rows[0][0]
    print(json.dumps({"us_per_request": cpu / (12 * 380) * 1e6, "parts": parts}))
if len(sys.argv) > 2 and sys.argv[1] == "--one":
    one(sys.argv[2]); raise SystemExit
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
res = {v: [] for v in VARIANTS}
for r in range(rounds):
    for v in VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--one", v], capture_output=True, text=True, check=True)
        d = json.loads(out.stdout.strip().splitlines()[-1]); res[v].append(d["us_per_request"])
        print(f"round {r} {v:<22} {d['us_per_request']:7.1f} us/request  parts {d['parts']}", flush=True)
for v, x in res.items():
    print(f"median {v:<22} {statistics.median(x):7.1f} us/request  x base {statistics.median(x)/statistics.median(res['base']):.2f}")
