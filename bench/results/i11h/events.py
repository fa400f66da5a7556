"""A full stack under C clients for SECONDS: system.events diff (store work by kind), the
collector's CPU by thread name, parts per table at the end.
Run: .venv/bin/python /tmp/exp/events.py [C] [seconds] [mode]"""
import asyncio, json, sys, tempfile, time, collections
from pathlib import Path
import psutil
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher, query
c = int(sys.argv[1]) if len(sys.argv) > 1 else 32
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 90
mode = sys.argv[3] if len(sys.argv) > 3 else "full"
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
def events(st):
    d = json.loads(query.execute(st.settings, "SELECT event, value FROM system.events", None, "JSONCompact"))["data"]
    return {k: int(v) for k, v in d}
def threads(p):
    out = collections.Counter()
    for t in p.threads():
        try:
            name = Path(f"/proc/{p.pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            continue
        out[name.rstrip("0123456789")] += t.user_time + t.system_time
    return out
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        col = psutil.Process(st.stack.collector_pid)
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 20, lambda: (0.0, 0.0)))
        e0 = events(st); t0 = threads(col); c0 = col.cpu_times(); w0 = time.time()
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        w1 = time.time(); c1 = col.cpu_times(); t1 = threads(col); e1 = events(st)
        n = res.sent_ok
        print(f"{mode} c={c}: answered {n} in {w1-w0:.0f} s ({n/(w1-w0):.0f} req/s); collector "
              f"{(c1.user+c1.system-c0.user-c0.system)*1e3/n:.3f} ms/req")
        print("collector CPU by thread (ms/req):")
        for k in sorted(t1, key=lambda k: -(t1[k]-t0.get(k, 0))):
            d = t1[k] - t0.get(k, 0)
            if d > 0.005:
                print(f"  {k:20s} {d*1e3/n:7.3f}")
        print("system.events diff (per request where noted):")
        for k in sorted(e1):
            d = e1[k] - e0.get(k, 0)
            if d and any(s in k for s in ("Insert", "Merge", "Select", "Query", "Part", "Compress", "Microseconds", "WriteBuffer", "FileOpen", "Mark")):
                print(f"  {k:50s} {d:14d}  {d/n:12.3f}/req")
        parts = json.loads(query.execute(st.settings, "SELECT table, count(), sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database='stagelog' GROUP BY table ORDER BY 2 DESC", None, "JSONCompact"))["data"]
        print("active parts:", parts)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
