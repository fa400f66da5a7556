"""Per-thread CPU of every server process, off vs full (collector paused)."""
import asyncio, os, sys, time, tempfile, argparse, json
from pathlib import Path
import psutil
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher

def snapshot(root_pid):
    out = {}
    root = psutil.Process(root_pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        name = ("tritonserver" if "tritonserver" in p.name() else "collector") if p.pid == root_pid else p.name()
        for part in p.cmdline():
            if "/model_repository" in part or part.endswith("model.py"):
                pass
        # stub args: <model path> <shm region> ...
        if "stub" in p.name():
            args = p.cmdline()
            name = Path(args[1]).parent.parent.name if len(args) > 1 else p.name()
        for t in Path(f"/proc/{p.pid}/task").iterdir():
            try:
                st = (t / "stat").read_text()
                comm = (t / "comm").read_text().strip()
                status = (t / "status").read_text()
            except OSError:
                continue
            f = st[st.rindex(")") + 2:].split()
            ut, stt = int(f[11]), int(f[12])
            minflt = int(f[7])
            vcs = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            nvcs = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
            key = (name, p.pid, int(t.name), comm)
            out[key] = (ut, stt, minflt, vcs, nvcs)
    return out

def diff(a, b, n):
    rows = {}
    for k, v in b.items():
        v0 = a.get(k, (0,)*5)
        d = [x - y for x, y in zip(v, v0)]
        rows[k] = d
    agg = {}
    for (name, pid, tid, comm), d in rows.items():
        role = "main" if pid == tid else (comm if name != "collector" else comm.rstrip("0123456789"))
        agg.setdefault((name, role), [0]*5)
        agg[(name, role)] = [x + y for x, y in zip(agg[(name, role)], d)]
    tck = os.sysconf("SC_CLK_TCK")
    res = {}
    for k, d in sorted(agg.items()):
        cpu_us = (d[0] + d[1]) / tck * 1e6 / n
        if cpu_us < 5: continue
        res[f"{k[0]}/{k[1]}"] = dict(cpu_us=round(cpu_us,1), sys_us=round(d[1]/tck*1e6/n,1), vcs=round(d[3]/n,2), nvcs=round(d[4]/n,2), minflt=round(d[2]/n,2))
    return res

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="off,spool")
    ap.add_argument("--c", type=int, default=8)
    ap.add_argument("--dur", type=float, default=15)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    args = ov.parse_args([])
    source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
    results = {}
    with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
        stacks = {}
        try:
            for m in a.modes.split(","):
                stacks[m] = ov.start(ov.MODES[m], Path(tmp) / m, args)
            for m, st in stacks.items():
                time.sleep(20)
                s0 = {**snapshot(st.stack.triton_pid), **snapshot(st.stack.collector_pid)}
                time.sleep(30)
                s1 = {**snapshot(st.stack.triton_pid), **snapshot(st.stack.collector_pid)}
                print(f"== {m} idle 30 s: us of CPU per second", flush=True)
                for k, v in diff(s0, s1, 30).items():
                    print(f"  {k:40s} {v}")
            for rep in range(a.reps):
                for m, st in stacks.items():
                    col = psutil.Process(st.stack.collector_pid) if st.mode.pause_collector and st.stack.collector_pid else None
                    if col: col.suspend()
                    url = f"127.0.0.1:{st.settings.grpc_port}"
                    box = {}
                    def probe():
                        box.setdefault("s", []).append({**snapshot(st.stack.triton_pid), **(snapshot(st.stack.collector_pid) if st.stack.collector_pid else {})})
                        return (0.0, 0.0)
                    load = asyncio.run(ov.closed_loop(url, source, f"exp-{m}-{rep}", a.c, 8, 3.0, a.dur, probe))
                    if col: col.resume()
                    n = load.sent_ok * a.dur / (a.dur + 3.0)  # approx requests in window
                    n = len(load.latencies_ms)
                    d = diff(box["s"][0], box["s"][1], n)
                    print(f"== {m} rep {rep}: {n/a.dur:.1f} req/s", flush=True)
                    for k, v in d.items():
                        print(f"  {k:40s} {v}")
                    results.setdefault(m, []).append(d)
                    time.sleep(3)
        finally:
            for st in stacks.values():
                launcher.down(st.settings)
                ov.kill_leftovers(st.settings.home)
main()
