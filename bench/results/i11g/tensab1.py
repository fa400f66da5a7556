"""One-process interleaved A/B of the flush encoder: the committed encode.py (BASE, a path
given as argv[1]) vs this tree's, call by call alternating, 220 records a flush, thread CPU.
Prints per stage the median of (A, B) pairs in us per record and the median ratio new/base."""
import importlib.util, sys, time, statistics
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode as NEW
spec = importlib.util.spec_from_file_location("encode_base", sys.argv[1])
BASE = importlib.util.module_from_spec(spec); spec.loader.exec_module(BASE)
N, PAIRS = 220, int(sys.argv[2]) if len(sys.argv) > 2 else 150
for what in ("tensors", "encode"):
    for stage in ("preprocess", "features", "mlp", "aggregate"):
        batch = records(stage, N, 8, True)
        recs = [b for b in batch if isinstance(b, NEW.Record)]
        def run(mod):
            if what == "tensors":
                mod._Flush(recs, 0, {}).tensors()
            else:
                mod.encode(batch, class_names=CLASSES)
        run(BASE); run(NEW)
        a, b, r = [], [], []
        for i in range(PAIRS):
            order = (BASE, NEW) if i % 2 else (NEW, BASE)
            got = {}
            for mod in order:
                t0 = time.thread_time_ns(); run(mod); got[mod] = time.thread_time_ns() - t0
            a.append(got[BASE]); b.append(got[NEW]); r.append(got[NEW] / got[BASE])
        m = lambda x: statistics.median(x) / N / 1000
        print(f"{what:<8} {stage:<11} base {m(a):6.2f}  new {m(b):6.2f} us/record  new/base {statistics.median(r):.2f}", flush=True)
