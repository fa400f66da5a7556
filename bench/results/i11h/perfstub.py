"""A full stack under 32 clients; perf record (-F 999 -g) on the features and preprocess stubs
for 20 s. Run: .venv/bin/python /tmp/exp/perfstub.py"""
import asyncio, subprocess, sys, tempfile
from pathlib import Path
import psutil
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", 32, 8, 0.0, 8, lambda: (0.0, 0.0)))
        pids = [str(p.pid) for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].endswith("triton_python_backend_stub") and any(m in p.info["cmdline"][1] for m in ("/features/", "/preprocess/", "/mlp/2/", "/aggregate/"))]
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", ",".join(pids), "-o", "/tmp/exp/stub.perf.data", "--", "sleep", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = asyncio.run(ov.closed_loop(url, source, "b", 32, 8, 0.0, 20, lambda: (0.0, 0.0)))
        perf.wait()
        print("answered", res.sent_ok)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
