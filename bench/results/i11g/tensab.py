"""A/B of the flush's tensor columns: min-of-40 thread CPU per record of _Flush.tensors() and
of a whole encode, 220 records a flush, per stage. Run from the tree under test."""
import time, sys
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode as E
N = 220
def t(fn, reps=40):
    best = None
    for _ in range(reps):
        a = time.thread_time_ns(); fn(); d = time.thread_time_ns() - a
        best = d if best is None else min(best, d)
    return best / N / 1000
out = []
for stage in ("preprocess", "features", "mlp", "aggregate"):
    batch = records(stage, N, 8, True)
    recs = [b for b in batch if isinstance(b, E.Record)]
    E.encode(batch, class_names=CLASSES)
    out.append(f"{stage} tensors {t(lambda: E._Flush(recs, 0, {}).tensors()):5.1f} encode {t(lambda: E.encode(batch, class_names=CLASSES)):5.1f}")
print(" | ".join(out))
