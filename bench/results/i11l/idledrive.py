"""EXPERIMENT: the collector's and the stubs' CPU with no traffic at all (a stack left idle).
Run: .venv/bin/python bench/results/i11l/idledrive.py SECONDS MODE [ENV=VALUE ...]"""
import os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import psutil
from bench import overhead as ov
from logging_backend.stack import launcher

secs = float(sys.argv[1]); mode = sys.argv[2]
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1); os.environ[k] = v
args = ov.parse_args([])
with tempfile.TemporaryDirectory(prefix="idle-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        time.sleep(15)
        coll = psutil.Process(st.stack.collector_pid)
        srv = [psutil.Process(st.stack.triton_pid)] + psutil.Process(st.stack.triton_pid).children(recursive=True)
        def cpu(ps):
            t = 0.0
            for p in ps:
                try: c = p.cpu_times(); t += c.user + c.system
                except psutil.Error: pass
            return t
        c0, s0 = cpu([coll]), cpu(srv)
        time.sleep(secs)
        c1, s1 = cpu([coll]), cpu(srv)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
print(f"### {mode} {' '.join(sys.argv[3:])}: idle {secs:.0f} s")
print(f"  collector: {(c1 - c0) / secs * 100:.2f} % of a core")
print(f"  tritonserver + stubs: {(s1 - s0) / secs * 100:.2f} % of a core")
