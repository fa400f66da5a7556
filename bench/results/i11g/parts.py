import time, statistics, tempfile, sys
from pathlib import Path
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode as E
from logging_backend.spool import layout, container
N = int(sys.argv[1]) if len(sys.argv) > 1 else 220
spool = Path(tempfile.mkdtemp())/"spool"
def t(fn, reps=15):
    s = []
    for _ in range(reps):
        a = time.thread_time_ns(); fn(); s.append(time.thread_time_ns() - a)
    return statistics.median(s) / N / 1000
for stage in ("preprocess", "features", "mlp", "aggregate"):
    batch = records(stage, N, 8, True)
    recs = [b for b in batch if isinstance(b, E.Record)]
    E.encode(batch, class_names=CLASSES)
    tables = E.encode(batch, class_names=CLASSES)
    res = {
      "init": t(lambda: E._Flush(recs, 0, {})),
      "events": t(lambda: E._Flush(recs, 0, {}).events()),
      "tensors": t(lambda: E._Flush(recs, 0, {}).tensors()),
      "preds": t(lambda: E._Flush(recs, 0, {}).predictions(CLASSES)),
      "encode": t(lambda: E.encode(batch, class_names=CLASSES)),
      "pack": t(lambda: container.pack(tables)),
      "write": t(lambda: layout.write_segment(spool, tables)),
    }
    res["events"] -= res["init"]; res["tensors"] -= res["init"]; res["preds"] -= res["init"]
    print(f"{stage:<11}" + "  ".join(f"{k} {v:5.1f}" for k, v in res.items()), flush=True)
