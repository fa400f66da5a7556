import sys, tempfile, time, os, statistics
sys.path.insert(0, "/work/main")
from bench.flush_cost import records
from logging_backend.capture import encode as enc
from logging_backend.spool import container, layout
tt = time.thread_time
for stage in ("preprocess", "features", "mlp", "aggregate"):
    for n in (125, 250):
        batches = [records(stage, n, 8, arrows=True, seed=s) for s in range(30)]
        tmp = tempfile.mkdtemp()
        res = {"encode": [], "tensors": [], "pack": [], "write": [], "fsync": []}
        for b in batches:
            t0 = tt(); tables = enc.encode(b); t1 = tt()
            parts = container.pack(tables); t2 = tt()
            p = os.path.join(tmp, f"x{t0}")
            fh = open(p, "wb"); fh.writelines(parts); fh.flush(); t3 = tt(); os.fsync(fh.fileno()); t4 = tt(); fh.close(); os.unlink(p)
            res["encode"].append(t1 - t0); res["pack"].append(t2 - t1); res["write"].append(t3 - t2); res["fsync"].append(t4 - t3)
            f = enc._Flush([r for r in b], 0, {})
            t5 = tt(); f.tensors(); t6 = tt(); res["tensors"].append(t6 - t5)
        print(stage, n, "  ".join(f"{k} {statistics.median(v)/n*1e6:6.1f}" for k, v in res.items()), "us/rec", flush=True)
