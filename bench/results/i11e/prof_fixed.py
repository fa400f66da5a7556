import cProfile, pstats, sys, tempfile, time
from pathlib import Path
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode
from logging_backend.spool import layout
stage = sys.argv[1]; n = int(sys.argv[2]); mode = sys.argv[3] if len(sys.argv) > 3 else "all"
batch = records(stage, n, 8, True)
tmp = Path(tempfile.mkdtemp())
for _ in range(5): layout.write_segment(tmp, encode.encode(batch, class_names=CLASSES), fmt="v2")
t0 = time.thread_time_ns()
for _ in range(200): tabs = encode.encode(batch, class_names=CLASSES)
t1 = time.thread_time_ns()
for _ in range(200): layout.write_segment(tmp, tabs, fmt="v2")
t2 = time.thread_time_ns()
print(f"encode {(t1-t0)/200/1000:.0f} us  write {(t2-t1)/200/1000:.0f} us per flush", {k: v.num_rows for k, v in tabs.items()})
pr = cProfile.Profile(); pr.enable()
for _ in range(200):
    if mode in ("all", "enc"): tabs = encode.encode(batch, class_names=CLASSES)
    if mode in ("all", "write"): layout.write_segment(tmp, tabs, fmt="v2")
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(22)
st = pstats.Stats(pr); st.print_callers("__getitem__"); st.print_callers(r"\(get\)")
