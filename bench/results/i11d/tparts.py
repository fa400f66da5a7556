import sys, time, statistics
sys.path.insert(0, "/work/main")
import numpy as np
from bench.flush_cost import records
from logging_backend.capture import encode as enc
orig_group = enc._Flush._tensor_group
orig_table = enc._TensorColumns.table
acc = {}
def timed(name, fn):
    def w(*a, **k):
        t0 = time.thread_time(); r = fn(*a, **k); acc[name] = acc.get(name, 0) + time.thread_time() - t0; return r
    return w
enc._Flush._tensor_group = timed("group", orig_group)
enc._TensorColumns.table = timed("table", orig_table)
orig_sd, orig_nd, orig_bin = enc._string_digests, enc._numeric_digests, enc._binary
enc._string_digests = timed("sdig", orig_sd); enc._numeric_digests = timed("ndig", orig_nd); enc._binary = timed("binary", orig_bin)
for stage in ("preprocess", "features", "mlp", "aggregate"):
    acc.clear(); total = 0
    batches = [records(stage, 250, 8, arrows=True, seed=s) for s in range(20)]
    for b in batches:
        f = enc._Flush(b, 0, {})
        t0 = time.thread_time(); f.tensors(); total += time.thread_time() - t0
    n = 250 * 20
    print(stage, f"total {total/n*1e6:.1f}", " ".join(f"{k} {v/n*1e6:.1f}" for k, v in acc.items()), "gather~", f"{(total - acc.get('group',0) - acc.get('table',0))/n*1e6:.1f}")
