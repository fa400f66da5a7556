"""EXPERIMENT driver (exp-flushstats.patch): flush-thread CPU by phase per request at C clients."""
import asyncio, glob, json, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
import psutil
c = int(sys.argv[1]); secs = float(sys.argv[2])
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="fl-") as tmp:
    d = Path(tmp) / "fl"; d.mkdir()
    os.environ["STAGELOG_EXP_FLUSHSTATS"] = str(d)
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    def snap():
        out = {}
        for f in glob.glob(str(d / "flush-*.json")):
            pid = int(Path(f).stem.split("-")[1])
            try: out[pid] = json.load(open(f))
            except Exception: pass
        return out
    def names():
        m = {}
        for p in psutil.process_iter(["cmdline"]):
            cl = p.info["cmdline"] or []
            if cl and "triton_python_backend_stub" in cl[0]: m[p.pid] = cl[1].split("/")[-3]
        return m
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 8, lambda: (0.0, 0.0)))
        time.sleep(1.5); a = snap()
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        time.sleep(1.5); b = snap(); nm = names()
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
n = res.sent_ok
print(f"full c={c}: {n} requests in {secs}s ({n/secs:.0f}/s)")
te = tw = 0
for pid in sorted(b, key=lambda p: nm.get(p, "")):
    if pid not in a: continue
    r = b[pid]["records"] - a[pid]["records"]; bt = b[pid]["batches"] - a[pid]["batches"]
    e = (b[pid]["encode_ns"] - a[pid]["encode_ns"]) / 1e3; w = (b[pid]["write_ns"] - a[pid]["write_ns"]) / 1e3
    te += e; tw += w
    print(f"  {nm.get(pid, pid)!s:10s} records {r:6d} batches {bt:3d}  encode {e / n:6.1f} us/req ({e / max(r,1):5.1f}/rec)  write {w / n:6.1f} us/req")
print(f"  all: encode {te / n:.1f} write {tw / n:.1f} us CPU per request")
