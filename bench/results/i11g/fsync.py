import os, time, statistics, tempfile
from pathlib import Path
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode as E
from logging_backend.spool import container
d = Path(tempfile.mkdtemp(dir="/tmp/exp"))
parts = container.pack(E.encode(records("features", 220, 8, True), class_names=CLASSES))
print("bytes", sum(len(p) for p in parts))
def w(sync, i):
    p = d / f"s{i}.tmp"
    with open(p, "wb") as fh:
        fh.writelines(parts); fh.flush()
        if sync: os.fsync(fh.fileno())
    os.rename(p, d / f"s{i}.seg")
for sync in (True, False, True, False):
    cpu = []; wall = []
    for i in range(30):
        a = time.thread_time(); b = time.perf_counter(); w(sync, i); cpu.append(time.thread_time()-a); wall.append(time.perf_counter()-b)
        time.sleep(0.05)
    for f in d.glob("*.seg"): f.unlink()
    print("fsync" if sync else "nosync", f"cpu {statistics.median(cpu)*1e3:.2f} ms wall {statistics.median(wall)*1e3:.2f} ms")
