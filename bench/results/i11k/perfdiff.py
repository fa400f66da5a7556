"""System-wide `perf record` (cpu-clock, no call graphs) while one stack serves C clients (batch 8)
for SECONDS; prints samples per 1,000 requests answered by process kind, thread name and shared
object, and the top symbols. Run: .venv/bin/python bench/results/i11j/perfdiff.py C SECONDS MODE
[stop] [OUT.data]  (MODE off|full; stop: the collector SIGSTOPped during the window)."""
import asyncio, os, signal, subprocess, sys, tempfile, time
from collections import Counter
from pathlib import Path
import psutil
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher

c = int(sys.argv[1]); secs = float(sys.argv[2]); mode = sys.argv[3]
stop = len(sys.argv) > 4 and sys.argv[4] == "stop"
out = sys.argv[5] if len(sys.argv) > 5 else f"/tmp/perf-{mode}-{int(stop)}.data"
FREQ = 999
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="perf-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 8, lambda: (0.0, 0.0)))
        coll = [p for p in psutil.process_iter(["cmdline"]) if any("collector_process" in x for x in (p.info["cmdline"] or []))]
        if stop:
            for p in coll: os.kill(p.pid, signal.SIGSTOP)
        perf = subprocess.Popen(["perf", "record", "-a", "-F", str(FREQ), "-o", out, "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        t0 = time.monotonic()
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        perf.send_signal(signal.SIGINT); perf.wait()
        wall = time.monotonic() - t0
        if stop:
            for p in coll: os.kill(p.pid, signal.SIGCONT)
        stubpids = {}
        for p in psutil.process_iter(["cmdline"]):
            cl = p.info["cmdline"] or []
            if cl and "triton_python_backend_stub" in cl[0]:
                stubpids[p.pid] = "stub:" + cl[1].split("/")[-3]
            elif cl and "tritonserver" in cl[0]:
                stubpids[p.pid] = "tritonserver"
            elif any("collector_process" in x for x in cl):
                stubpids[p.pid] = "collector"
        stubpids[os.getpid()] = "client"
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
n = res.sent_ok
rep = subprocess.run(["perf", "script", "-i", out, "-F", "comm,pid,tid,ip,sym,dso"], capture_output=True, text=True).stdout
import re
LINE = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+([0-9a-f]+)\s+(.*) \((.*)\)$")
by_proc, by_thread, by_dso, by_sym = Counter(), Counter(), Counter(), Counter()
total = 0
for line in rep.splitlines():
    m = LINE.match(line)
    if not m: continue
    comm, pid, sym, dso = m.group(1), int(m.group(2)), m.group(5), m.group(6)
    kind = stubpids.get(pid, "idle" if pid == 0 else "other:" + comm)
    total += 1
    by_proc[kind] += 1
    by_thread[(kind, "sl-flush" if comm.startswith("sl-flush") else comm)] += 1
    by_dso[(kind.split(":")[0], "sl-flush" if comm.startswith("sl-flush") else "", os.path.basename(dso))] += 1
    by_sym[(os.path.basename(dso), sym[:70])] += 1
k = 1000.0 / n
exp = " ".join(f"{k[9:]}={v}" for k, v in sorted(os.environ.items()) if k.startswith("STAGELOG_EXP"))
print(f"{mode}{(' ' + exp) if exp else ''} stop={stop} c={c}: {n} requests in {wall:.1f} s ({n / wall:.0f}/s); {total} samples at {FREQ} Hz; samples per 1000 requests (1 sample ~ {1000/FREQ:.2f} ms CPU):")
print("# by process"); [print(f"  {v * k:8.1f}  {key}") for key, v in by_proc.most_common()]
print("# by process kind and thread name"); [print(f"  {v * k:8.1f}  {key}") for key, v in by_thread.most_common(30)]
print("# by process kind and shared object"); [print(f"  {v * k:8.1f}  {key}") for key, v in by_dso.most_common(40)]
print("# top symbols"); [print(f"  {v * k:8.1f}  {key}") for key, v in by_sym.most_common(60)]
