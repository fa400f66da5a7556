"""EXPERIMENT: one read of each clock a Record reads, one array copy, one digest (min of 5 x 200,000 calls).
Run: .venv/bin/python bench/results/i11l/clock_cost.py"""
import timeit

for name in ("time.thread_time_ns()", "time.perf_counter_ns()", "time.time_ns()"):
    n = 200_000
    t = min(timeit.repeat(name, "import time", number=n, repeat=5))
    print(f"{name:24s} {t / n * 1e9:7.1f} ns per call")

# what an arrow input costs on the serving thread either way (section 5 of README.md)
setup = "import hashlib, numpy as np; a = np.random.default_rng(0).random((8, 45), dtype=np.float32)"
for label, stmt in (
    ("copy of a [8, 45] float32 array", "a.copy()"),
    ("SHA-256 of its 1,440 bytes (hex, 32 chars)", "hashlib.sha256(memoryview(a).cast('B')).hexdigest()[:32]"),
):
    n = 200_000
    t = min(timeit.repeat(stmt, setup, number=n, repeat=5))
    print(f"{label:44s} {t / n * 1e9:7.1f} ns per call")
