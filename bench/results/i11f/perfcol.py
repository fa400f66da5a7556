import asyncio, sys, time, tempfile, subprocess, os
from pathlib import Path
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
mode = sys.argv[1] if len(sys.argv) > 1 else "full"
target = sys.argv[2] if len(sys.argv) > 2 else "collector"
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        pid = st.stack.collector_pid
        if target != "collector":
            import psutil
            for p in psutil.Process(st.stack.triton_pid).children():
                if target in " ".join(p.cmdline()): pid = p.pid
        out = f"/tmp/exp/prof-{mode}-{target}.txt"
        prof = subprocess.Popen(["sleep", "4"])
        async def go():
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(ov.closed_loop(url, source, "p", 8, 8, 2.0, 20.0, lambda: (0.0, 0.0)))
            await asyncio.sleep(4)
            proc = await asyncio.create_subprocess_exec("timeout", "-s", "INT", "14", "perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", out + ".perf", stdout=None, stderr=None)
            r = await task
            await proc.wait()
            print("req", r.sent_ok)
        asyncio.run(go())
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
