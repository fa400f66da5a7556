import asyncio, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
import psutil
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
def threads(home):
    out = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(home) in cmd and ("stub" in cmd or "tritonserver" in cmd):
            for t in Path(f"/proc/{p.info['pid']}/task").iterdir():
                try:
                    stat = (t / "stat").read_text(); comm = (t / "comm").read_text().strip()
                    f = stat.rsplit(")", 1)[1].split()
                    out[(p.info["pid"], comm, t.name)] = int(f[11]) + int(f[12])
                except Exception: pass
    return out
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    for m in ("off", "full"):
        st = ov.start(ov.MODES[m], Path(tmp) / m, args)
        try:
            url = f"127.0.0.1:{st.settings.grpc_port}"
            asyncio.run(ov.closed_loop(url, source, "w", 8, 8, 0.0, 2.0, lambda: (0.0, 0.0)))
            time.sleep(3)
            a = threads(st.settings.home); time.sleep(10); b = threads(st.settings.home)
            agg = {}
            for k, v in b.items():
                d = v - a.get(k, v)
                agg[k[1]] = agg.get(k[1], 0) + d
            print(m, "idle 10 s, ticks (10 ms) by thread name:", {k: v for k, v in sorted(agg.items(), key=lambda x: -x[1]) if v})
        finally:
            launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
