"""When do rows wait longest? Per-second freshness under 8 clients for 100 s, with the store's
insert times and the rollup job's begun/done times (a full stack, the defaults)."""
import asyncio, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher, query

args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
dur = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    t_up = time.time()
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        r = asyncio.run(ov.closed_loop(url, source, "s", 8, 8, 0.0, dur, lambda: (0.0, 0.0)))
        expected = (r.sent_ok * 6, r.sent_ok * 32)
        ov.drain(st.settings, "s", expected, 120)
        fresh = {}
        sql = ("SELECT request_id, max(toUnixTimestamp64Micro(stored_at)) FROM (SELECT request_id, stored_at FROM stagelog.stage_events WHERE startsWith(request_id, 's-') "
               "UNION ALL SELECT request_id, stored_at FROM stagelog.predictions WHERE startsWith(request_id, 's-')) GROUP BY request_id")
        data = json.loads(query.execute(st.settings, sql, {}, "JSONCompact"))["data"]
        per_sec = {}
        for rid, us in data:
            a = r.answered_at.get(rid)
            if a is None: continue
            per_sec.setdefault(int(a - t_up), []).append(int(us) / 1e6 - a)
        ins = json.loads(query.execute(st.settings, "SELECT DISTINCT toUnixTimestamp64Milli(stored_at) FROM stagelog.stage_events ORDER BY 1", {}, "JSONCompact"))["data"]
        rp = json.loads(query.execute(st.settings, "SELECT rollup, state, toUnixTimestamp64Milli(ts) FROM stagelog.rollup_progress ORDER BY ts", {}, "JSONCompact"))["data"]
        print("second after up: max freshness (n)")
        for s in sorted(per_sec):
            v = per_sec[s]
            flag = " <==" if max(v) > 3 else ""
            print(f"{s:4d} {max(v):5.2f} ({len(v)}){flag}")
        print("stage_events inserts (s after up):", [round(int(x[0]) / 1000 - t_up, 2) for x in ins])
        print("rollup progress (s after up):", [(a, b, round(int(c) / 1000 - t_up, 2)) for a, b, c in rp])
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
