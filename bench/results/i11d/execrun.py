import asyncio, sys, time, tempfile, json, glob, statistics
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
def snap():
    out = {}
    for f in glob.glob("/tmp/exp/execout/*.json"):
        try: out[f] = json.load(open(f))
        except Exception: pass
    return out
res = {}
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    stacks = {m: ov.start(ov.MODES[m], Path(tmp) / m, args) for m in ("off", "spool")}
    try:
        for rep in range(4):
            for m, st in stacks.items():
                import psutil
                col = psutil.Process(st.stack.collector_pid) if st.stack.collector_pid else None
                if col: col.suspend()
                url = f"127.0.0.1:{st.settings.grpc_port}"
                asyncio.run(ov.closed_loop(url, source, f"x{rep}{m}", 8, 8, 0.0, 3.0, lambda: (0.0, 0.0)))
                a = snap()
                asyncio.run(ov.closed_loop(url, source, f"y{rep}{m}", 8, 8, 0.0, 12.0, lambda: (0.0, 0.0)))
                b = snap()
                if col: col.resume()
                for f, v in b.items():
                    v0 = a.get(f, [0, 0, 0])
                    if v[1] - v0[1] <= 0: continue
                    name = Path(f).name.split("-")[0]
                    res.setdefault((m, name), []).append((v[0] - v0[0]) / (v[1] - v0[1]) / 1000)
                time.sleep(2)
    finally:
        for st in stacks.values():
            launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
for k in sorted(res): print(k, f"execute() thread CPU us/request median {statistics.median(res[k]):.1f}", [round(x) for x in res[k]])
