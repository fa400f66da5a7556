import asyncio, sys, time, tempfile, json
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher, query
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
sql = "SELECT table, max(max_block_number) b, countIf(active) act, count() parts FROM system.parts WHERE database='stagelog' GROUP BY table ORDER BY b DESC"
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        t0 = json.loads(query.execute(st.settings, sql, {}, "JSONCompact"))["data"]
        r = asyncio.run(ov.closed_loop(url, source, "p", 8, 8, 0.0, 30.0, lambda: (0.0, 0.0)))
        t1 = json.loads(query.execute(st.settings, sql, {}, "JSONCompact"))["data"]
        a = {x[0]: int(x[1]) for x in t0}
        print("requests", r.sent_ok)
        for x in t1: print(f"{x[0]:30s} inserts/30s {int(x[1]) - a.get(x[0], 0):5d} active {x[2]} all {x[3]}")
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
