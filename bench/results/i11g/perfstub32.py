"""perf record the stubs (and tritonserver) under 32-client load, modes off and spool (collector paused)."""
import asyncio, sys, time, tempfile, subprocess, os
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
import psutil
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
out = Path("/tmp/exp/perfstub32"); out.mkdir(exist_ok=True)
def stubs(settings):
    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "triton_python_backend_stub" in cmd and str(settings.home) in cmd:
            pids.append(p.info["pid"])
    return pids
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    stacks = {m: ov.start(ov.MODES[m], Path(tmp) / m, args) for m in ("off", "spool")}
    try:
        for m, st in stacks.items():
            col = psutil.Process(st.stack.collector_pid) if st.stack.collector_pid else None
            if col: col.suspend()
            url = f"127.0.0.1:{st.settings.grpc_port}"
            asyncio.run(ov.closed_loop(url, source, f"w{m}", 32, 8, 0.0, 3.0, lambda: (0.0, 0.0)))
            pids = stubs(st.settings)
            # idle CPU of the stubs over 5 s
            t0 = {p: psutil.Process(p).cpu_times() for p in pids}
            time.sleep(5)
            idle = sum((psutil.Process(p).cpu_times().user + psutil.Process(p).cpu_times().system) - (t0[p].user + t0[p].system) for p in pids)
            print(m, "stubs", len(pids), f"idle cpu over 5 s: {idle*1000:.1f} ms", flush=True)
            rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", str(out / f"{m}.data"), "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            res = asyncio.run(ov.closed_loop(url, source, f"y{m}", 32, 8, 0.0, 12.0, lambda: (0.0, 0.0)))
            rec.send_signal(2); rec.wait()
            print(m, "sent_ok", res.sent_ok, flush=True)
            if col: col.resume()
    finally:
        for st in stacks.values():
            launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
