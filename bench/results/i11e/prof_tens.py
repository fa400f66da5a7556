import cProfile, pstats, sys, time
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode
from logging_backend.capture.records import Record
stage = sys.argv[1]; n = int(sys.argv[2]); what = sys.argv[3]
recs = [b for b in records(stage, n, 8, True) if isinstance(b, Record)]
f = encode._Flush(recs, 0, {})
fn = {"tensors": f.tensors, "pred": lambda: f.predictions(CLASSES), "events": f.events}[what]
for _ in range(20): fn()
pr = cProfile.Profile(time.thread_time); pr.enable()
for _ in range(300): fn()
pr.disable()
pstats.Stats(pr).sort_stats("tottime").print_stats(18)
