import sys, time, tempfile, statistics
from pathlib import Path
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode
from logging_backend.spool import layout
tmp = Path(tempfile.mkdtemp())
for stage in ("features", "aggregate"):
    for n in (1, 10, 30, 75, 150, 300):
        batch = records(stage, n, 8, True)
        for _ in range(3): layout.write_segment(tmp, encode.encode(batch, class_names=CLASSES), fmt="v2")
        e, w = [], []
        for _ in range(max(5, 600 // n)):
            t0 = time.thread_time_ns(); tabs = encode.encode(batch, class_names=CLASSES)
            t1 = time.thread_time_ns(); layout.write_segment(tmp, tabs, fmt="v2"); t2 = time.thread_time_ns()
            e.append(t1 - t0); w.append(t2 - t1)
        me, mw = statistics.median(e) / 1000, statistics.median(w) / 1000
        print(f"{stage:10s} n={n:4d} encode {me:7.0f} us ({me/n:6.1f}/rec)  write {mw:6.0f} us ({mw/n:6.1f}/rec)", flush=True)
