"""A/B: glibc malloc tunables in tritonserver's env (the stubs inherit it); modes off and spool."""
import asyncio, sys, time, tempfile, os, statistics
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
import psutil
TUN = sys.argv[1] if len(sys.argv) > 1 else "glibc.malloc.mxfast=0:glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864:glibc.malloc.mmap_threshold=16777216"
clients = int(sys.argv[2]) if len(sys.argv) > 2 else 8
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
res = {}
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    stacks = {}
    for name, mode, tun in (("off", "off", ""), ("spool", "spool", ""), ("off+t", "off", TUN), ("spool+t", "spool", TUN)):
        if tun: os.environ["GLIBC_TUNABLES"] = tun
        else: os.environ.pop("GLIBC_TUNABLES", None)
        stacks[name] = ov.start(ov.MODES[mode], Path(tmp) / name.replace("+", "_"), args)
    os.environ.pop("GLIBC_TUNABLES", None)
    try:
        for rep in range(4):
            for name, st in stacks.items():
                col = psutil.Process(st.stack.collector_pid) if st.stack.collector_pid else None
                if col and "spool" in name: col.suspend()
                url = f"127.0.0.1:{st.settings.grpc_port}"
                asyncio.run(ov.closed_loop(url, source, f"w{rep}{name}", clients, 8, 0.0, 2.0, lambda: (0.0, 0.0)))
                r = asyncio.run(ov.closed_loop(url, source, f"y{rep}{name}", clients, 8, 0.0, 10.0, lambda: (0.0, 0.0)))
                if col and "spool" in name: col.resume()
                res.setdefault(name, []).append(r.sent_ok / r.window_s)
                print(rep, name, round(r.sent_ok / r.window_s, 1), flush=True)
                time.sleep(1.5)
    finally:
        for st in stacks.values():
            launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
print("tunables:", TUN, "clients", clients)
for k, v in res.items(): print(f"{k:8s} median {statistics.median(v):7.1f} req/s  {[round(x) for x in v]}")
m = {k: statistics.median(v) for k, v in res.items()}
print(f"spool/off {m['spool']/m['off']:.3f}   spool+t/off+t {m['spool+t']/m['off+t']:.3f}   spool+t/off {m['spool+t']/m['off']:.3f}  off+t/off {m['off+t']/m['off']:.3f}")
