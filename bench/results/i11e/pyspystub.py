"""py-spy the stubs under 8-client load, mode spool (collector paused): where the Python time goes."""
import asyncio, sys, time, tempfile, subprocess
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
import psutil
mode = sys.argv[1] if len(sys.argv) > 1 else "spool"
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
out = Path("/tmp/exp/pyspy"); out.mkdir(exist_ok=True)
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        col = psutil.Process(st.stack.collector_pid) if st.stack.collector_pid else None
        if col and mode == "spool": col.suspend()
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", 8, 8, 0.0, 3.0, lambda: (0.0, 0.0)))
        pids = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"]) if "triton_python_backend_stub" in " ".join(p.info["cmdline"] or []) and str(st.settings.home) in " ".join(p.info["cmdline"] or [])]
        names = {p: psutil.Process(p).cmdline()[1].split("/")[-2] if len(psutil.Process(p).cmdline()) > 1 else str(p) for p in pids}
        spies = [subprocess.Popen(["/work/main/.venv/bin/py-spy", "record", "-r", "200", "-d", "12", "-f", "raw", "-t", "-o", str(out / f"{mode}-{p}.txt"), "-p", str(p)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in pids]
        r = asyncio.run(ov.closed_loop(url, source, "y", 8, 8, 0.0, 12.0, lambda: (0.0, 0.0)))
        for s in spies: s.wait()
        print(mode, "sent_ok", r.sent_ok, names, flush=True)
        if col and mode == "spool": col.resume()
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
