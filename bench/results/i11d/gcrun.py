import asyncio, sys, time, tempfile, json, glob, os
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
mode = sys.argv[1]
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
def snap():
    out = {}
    for f in glob.glob("/tmp/exp/gcout/gc-*.json"):
        try: out[f] = json.load(open(f))
        except Exception: pass
    return out
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        time.sleep(3); a = snap()
        r = asyncio.run(ov.closed_loop(url, source, "g", 8, 8, 0.0, 20.0, lambda: (0.0, 0.0)))
        time.sleep(2.5); b = snap()
        n = r.sent_ok
        tot = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
        for f, d in b.items():
            if d["argv"][0] != "stub": continue
            for g in ("0", "1", "2"):
                c0, t0 = a.get(f, {"acc": {g: [0, 0.0]}})["acc"][g]
                c1, t1 = d["acc"][g]
                tot[int(g)][0] += c1 - c0; tot[int(g)][1] += t1 - t0
            print(d["argv"][1][-40:] if len(d["argv"]) > 1 else d["argv"], {g: d["acc"][g] for g in d["acc"]})
        print(mode, "requests", n, {g: (c, round(t / n * 1e6, 1)) for g, (c, t) in tot.items()}, "gc us/req (all stubs)")
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
