"""One full-logging stack under 8 clients for MINUTES, the collector's CPU per 15 s slice, and
perf (-F 199 -g) on the collector throughout: per slice, the share of its samples in ext4's
inode allocator (recently_deleted / find_inode_bit / __ext4_new_inode) and in the kernel.
Run: .venv/bin/python bench/results/i11g/burst.py [minutes]"""
import asyncio, subprocess, sys, tempfile, threading, time, collections
from pathlib import Path
import psutil
sys.path.insert(0, "/work/main")
from bench import overhead as ov
from loadtest.workload import EventSource
from logging_backend.stack import launcher
minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 12
args = ov.parse_args([])
source = EventSource(pool_size=5000, seed=11, bad_share=0.0)
slices = []
with tempfile.TemporaryDirectory(prefix="exp-") as tmp:
    st = ov.start(ov.MODES["full"], Path(tmp) / "full", args)
    try:
        col = psutil.Process(st.stack.collector_pid)
        data = "/tmp/exp/burst.perf.data"
        perf = subprocess.Popen(["perf", "record", "-F", "199", "-g", "-p", str(col.pid), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_start = time.time()
        stop = threading.Event()
        def watch():
            last = col.cpu_times(); lt = time.time()
            while not stop.wait(15):
                now = col.cpu_times(); t = time.time()
                slices.append((lt - t_start, t - t_start, (now.user + now.system - last.user - last.system)))
                last, lt = now, t
        w = threading.Thread(target=watch); w.start()
        url = f"127.0.0.1:{st.settings.grpc_port}"
        res = asyncio.run(ov.closed_loop(url, source, "b", 8, 8, 0.0, minutes * 60, lambda: (0.0, 0.0)))
        stop.set(); w.join()
        perf.send_signal(2); perf.wait()
        print(f"answered {res.sent_ok} in {minutes:.0f} min", flush=True)
    finally:
        launcher.down(st.settings); ov.kill_leftovers(st.settings.home)
# perf script: sample time + whether its stack holds an ext4 inode-allocator frame / kernel frame
out = subprocess.run(["perf", "script", "-i", data, "-F", "time,ip,sym"], capture_output=True, text=True).stdout
per = collections.defaultdict(lambda: [0, 0, 0])
t0 = None; cur = None; ext4 = kern = False
def close():
    if cur is not None:
        per[cur][0] += 1; per[cur][1] += ext4; per[cur][2] += kern
for line in out.splitlines():
    s = line.strip()
    if not s:
        continue
    if s.endswith(":") and s[:-1].replace(".", "").isdigit():
        close()
        t = float(s[:-1]); t0 = t if t0 is None else t0
        cur = int((t - t0) // 15); ext4 = kern = False; first = True
        continue
    if cur is None:
        continue
    if "recently_deleted" in s or "find_inode_bit" in s or "__ext4_new_inode" in s:
        ext4 = True
    if first:
        kern = "[kernel" in s or s.split()[-1].startswith(("__", "do_", "ext4")) and False
        first = False
close()
print("slice  t(s)  collector CPU %  perf samples  in ext4 inode alloc %")
for i, (a, b, cpu) in enumerate(slices):
    n, e, _ = per.get(i, [0, 0, 0])
    print(f"{i:4d} {a:6.0f}  {cpu / (b - a) * 100:6.1f}  {n:6d}  {100 * e / n if n else 0:6.1f}")
