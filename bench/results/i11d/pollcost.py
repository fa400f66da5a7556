import sys, time, tempfile, json
from pathlib import Path
import psutil
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from logging_backend.stack import launcher, query
args = ov.parse_args([])
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    try:
        col = psutil.Process(st.stack.collector_pid)
        fp = ov.FreshnessProbe(st.settings, (6, 32), 1000.0)
        def cpu():
            t = col.cpu_times(); return t.user + t.system
        time.sleep(5)
        for label, fn in (("idle 10 s", None), ("40 polls", "poll")):
            c0 = cpu(); w0 = time.time()
            if fn is None:
                time.sleep(10)
            else:
                for i in range(40):
                    fp.pending = {f"x-{i}-{j}": time.time() for j in range(3)}
                    fp._poll()
            print(label, f"collector cpu {(cpu()-c0)*1e3:.1f} ms over {time.time()-w0:.1f} s", flush=True)
        fp.stop() if hasattr(fp, "stop") else None
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
