"""The rollup SELECTs over the newest range as the store grows: the committed SQL (_block_number
filter only) vs the part-name condition added (this tree). chDB process CPU per SELECT (every
thread), median of 3, after each growth step; the range is the last cycle's insert (380
requests). Run: .venv/bin/python bench/results/i11g/rollscan.py [steps] [cycles_per_step]"""
import re, subprocess, sys, tempfile, time, statistics
from pathlib import Path
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
per = int(sys.argv[2]) if len(sys.argv) > 2 else 20
base = {r.name: subprocess.run(["git", "show", f"HEAD:logging_backend/store/rollup_sql/{r.name}.sql"],
        capture_output=True, text=True, check=True).stdout for r in rollups.ROLLUPS}
tabs = [{t: pa.concat_tables(p) for t, p in flush_tables(380, 8, seed=s).items()} for s in range(4)]
with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    c = 0
    for step in range(steps):
        for _ in range(per):
            for t, data in sorted(tabs[c % 4].items()):
                # fresh request ids and times so that no insert is a duplicate of another
                client.insert_arrow(f"stagelog.{t}", data, settings={"insert_deduplication_token": f"{c}-{t}"})
            c += 1
        time.sleep(2)
        line = [f"after {c * 380:6d} requests ({c} inserts per table):"]
        for r in rollups.ROLLUPS:
            ((pid, top),) = client.query("SELECT partition_id, max(max_block_number) FROM system.parts WHERE database='stagelog' AND table={t:String} AND active GROUP BY partition_id", parameters={"t": r.source}).result_rows
            params = {"partition": pid, "block_from": int(top) - 1, "block_to": int(top)}
            out = {}
            for label, sql in (("base", base[r.name]), ("new", r.select())):
                s = []
                for _ in range(3):
                    a = time.process_time(); client.query(f"SELECT count() FROM ({sql})", parameters=params); s.append(time.process_time() - a)
                out[label] = statistics.median(s) * 1e3
            line.append(f"{r.name} {out['base']:.1f} -> {out['new']:.1f} ms")
        print("  ".join(line), flush=True)
