"""EXPERIMENT driver (needs exp-gcstats.patch applied): gc time per request in each stub at C clients.
Run: [STAGELOG_GC_ROOM=off] .venv/bin/python bench/results/i11k/gcdrive.py C SECONDS MODE"""
import asyncio, glob, json, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher

c = int(sys.argv[1]); secs = float(sys.argv[2]); mode = sys.argv[3]
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="gc-") as tmp:
    gcdir = Path(tmp) / "gc"; gcdir.mkdir()
    os.environ["STAGELOG_EXP_GCSTATS"] = str(gcdir)
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    def snap():
        out = {}
        for f in glob.glob(str(gcdir / "gc-*.json")):
            try: out[Path(f).name.split("-")[1]] = json.load(open(f))
            except Exception: pass
        return out
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 8, lambda: (0.0, 0.0)))
        time.sleep(2.5); a = snap()
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        time.sleep(2.5); b = snap()
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
n = res.sent_ok
print(f"{mode} c={c}: {n} requests in {secs}s ({n/secs:.0f}/s)")
tot = 0
for stage in sorted(b):
    if stage not in a: continue
    d = [ (b[stage]["ns"][g]-a[stage]["ns"][g]) / 1e3 / n for g in range(3)]
    k = [ b[stage]["n"][g]-a[stage]["n"][g] for g in range(3)]
    tot += sum(d)
    print(f"  {stage:10s} gc us/req gen0 {d[0]:6.2f} gen1 {d[1]:6.2f} gen2 {d[2]:6.2f}  collections {k}  tracked {b[stage].get('tracked')}")
print(f"  all stages gc us/req {tot:.1f}")
