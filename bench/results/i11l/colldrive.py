"""EXPERIMENT: what the collector does at C clients: inserts per table, queries, and a perf profile.
Run: .venv/bin/python bench/results/i11l/colldrive.py C SECONDS MODE PERF_OUT [ENV=VALUE ...]"""
import asyncio, json, os, subprocess, sys, tempfile, time
import psutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher, query

c = int(sys.argv[1]); secs = float(sys.argv[2]); mode = sys.argv[3]; perf_out = sys.argv[4]
for kv in sys.argv[5:]:
    k, v = kv.split("=", 1); os.environ[k] = v
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)

def health(settings):
    sql = ("SELECT ts, inserts, rows_shipped, queries, rows_by_table FROM stagelog.collector_health "
           "ORDER BY ts DESC LIMIT 1")
    return json.loads(query.execute(settings, sql, {}, "JSONCompact"))["data"]

with tempfile.TemporaryDirectory(prefix="coll-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 8, lambda: (0.0, 0.0)))
        time.sleep(11); h0 = health(st.settings)
        pid = st.stack.collector_pid
        perf = subprocess.Popen(["sleep", "0"]) if perf_out == "-" else subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", perf_out, "--", "sleep", str(secs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = psutil.Process(pid); ct0 = proc.cpu_times(); f0 = proc.memory_info()
        flt0 = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        ct1 = proc.cpu_times(); flt1 = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])
        perf.wait()
        time.sleep(11); h1 = health(st.settings)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
print(f"### {mode} c={c}: {res.sent_ok} requests in {secs}s")
n = res.sent_ok
print(f"collector CPU us/request: user {(ct1.user-ct0.user)/n*1e6:.1f} system {(ct1.system-ct0.system)/n*1e6:.1f}; minor faults/request {(flt1-flt0)/n:.2f}")
print("health before:", h0)
print("health after: ", h1)
