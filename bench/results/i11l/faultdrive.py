"""Page faults and CPU per request of each Triton stub process (and each of its threads) at C clients.
Run: .venv/bin/python bench/results/i11l/faultdrive.py C SECONDS MODE [ENV=VALUE ...]"""
import asyncio, os, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher

c = int(sys.argv[1]); secs = float(sys.argv[2]); mode = sys.argv[3]
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1); os.environ[k] = v
TICK = os.sysconf("SC_CLK_TCK")

def stat(path):
    raw = Path(path).read_text()
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    f = raw[raw.rindex(")") + 2 :].split()
    # fields after comm: state=0 ... minflt=7 majflt=9 utime=11 stime=12
    return comm, int(f[7]), int(f[9]), int(f[11]), int(f[12])

def stubs():
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit(): continue
        try: cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError: continue
        if not cmd or not cmd[0].endswith(b"triton_python_backend_stub"): continue
        stage = Path(cmd[1].decode()).parts[-3] if len(cmd) > 1 else "?"
        out[p.name] = stage
    return out

def snap(pids):
    out = {}
    for pid, stage in pids.items():
        try:
            for t in Path(f"/proc/{pid}/task").iterdir():
                comm, mn, mj, ut, st = stat(t / "stat")
                out[(stage, pid, t.name, comm)] = (mn, mj, ut, st)
        except OSError: pass
    return out

args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
with tempfile.TemporaryDirectory(prefix="flt-") as tmp:
    st = ov.start(ov.MODES[mode], Path(tmp) / mode, args)
    try:
        url = f"127.0.0.1:{st.settings.grpc_port}"
        asyncio.run(ov.closed_loop(url, source, "w", c, 8, 0.0, 8, lambda: (0.0, 0.0)))
        pids = stubs(); a = snap(pids)
        res = asyncio.run(ov.closed_loop(url, source, "b", c, 8, 0.0, secs, lambda: (0.0, 0.0)))
        b = snap(pids)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
n = res.sent_ok
print(f"### {mode} {' '.join(sys.argv[4:])} c={c}: {n} requests in {secs}s ({n/secs:.0f}/s)")
agg = {}
for key, (mn, mj, ut, stt) in b.items():
    if key not in a: continue
    stage, pid, tid, comm = key
    d = [mn - a[key][0], mj - a[key][1], (ut - a[key][2]) / TICK * 1e6 / n, (stt - a[key][3]) / TICK * 1e6 / n]
    if d[2] + d[3] == 0 and d[0] == 0: continue
    role = "main" if tid == pid else ("flush" if comm.startswith("sl-flush") else "other threads")
    g = agg.setdefault((stage, role), [0, 0, 0.0, 0.0])
    for i in range(4): g[i] += d[i]
tot = [0, 0, 0.0, 0.0]
print(f"  {'stage':10s} {'thread':16s} {'minflt/req':>10s} {'user us/req':>11s} {'sys us/req':>10s}")
for (stage, role), (mn, mj, ut, stt) in sorted(agg.items()):
    print(f"  {stage:10s} {role:16s} {mn/n:10.2f} {ut:11.1f} {stt:10.1f}")
    tot[0] += mn; tot[2] += ut; tot[3] += stt
print(f"  {'all':10s} {'':16s} {tot[0]/n:10.2f} {tot[2]:11.1f} {tot[3]:10.1f}")
