"""A full stack under C clients (batch 8) for SECONDS: per stub and tritonserver, per request
answered: CPU of the flush thread and of the other threads, minor page faults, voluntary and
involuntary context switches (all threads). Run: .venv/bin/python bench/results/i11i/flushthreads-exp.py [C] [s] [mode] [stop]; with exp-hacks.patch applied for STAGELOG_EXP*"""
import asyncio, sys, tempfile, time
from pathlib import Path
import psutil, os, signal
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
c = int(sys.argv[1]) if len(sys.argv) > 1 else 32
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 30
mode = sys.argv[3] if len(sys.argv) > 3 else "full"
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
def snap(procs):
    out = {}
    for name, p in procs.items():
        fl = other = 0.0
        for t in p.threads():
            try:
                comm = Path(f"/proc/{p.pid}/task/{t.id}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("sl-flush"):
                fl += t.user_time + t.system_time
            else:
                other += t.user_time + t.system_time
        stat = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ctx = p.num_ctx_switches()
        out[name] = (fl, other, int(stat[7]), ctx.voluntary, ctx.involuntary)
    return out
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 10, lambda: (0.0, 0.0)))
        procs = {}
        for p in psutil.process_iter(["cmdline"]):
            cl = p.info["cmdline"] or []
            if cl and "triton_python_backend_stub" in cl[0]:
                procs["/".join(cl[1].split("/")[-3:-1])] = p
            elif cl and "tritonserver" in cl[0]:
                procs["tritonserver"] = p
        coll = [p for p in psutil.process_iter(["cmdline"]) if any("collector_process" in x for x in (p.info["cmdline"] or []))]
        stop = len(sys.argv) > 4 and sys.argv[4] == "stop"
        if stop:
            for p in coll: os.kill(p.pid, signal.SIGSTOP)
        a = snap(procs)
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        b = snap(procs)
        if stop:
            for p in coll: os.kill(p.pid, signal.SIGCONT)
        n = res.sent_ok
        print(f"{mode} exp={os.environ.get('STAGELOG_EXP','')} gc={os.environ.get('STAGELOG_EXP_GC','')} malloc={[k+'='+v for k,v in os.environ.items() if k.startswith('MALLOC')]} stop={stop} c={c}: {n} requests in {secs:.0f} s ({n / secs:.0f}/s); us per request:")
        tf = to = 0
        for name in sorted(procs):
            f = (b[name][0] - a[name][0]) * 1e6 / n; o = (b[name][1] - a[name][1]) * 1e6 / n
            tf += f; to += o
            mf = (b[name][2] - a[name][2]) / n; vc = (b[name][3] - a[name][3]) / n; ic = (b[name][4] - a[name][4]) / n
            print(f"  {name:22s} flush {f:7.1f}   other threads {o:7.1f}   minflt {mf:6.2f}   ctx vol {vc:6.2f} invol {ic:6.2f}")
        print(f"  {'all':22s} flush {tf:7.1f}   other threads {to:7.1f}")
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
