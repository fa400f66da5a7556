import sys, time, statistics
from bench.flush_cost import records, CLASSES
from logging_backend.capture import encode
from logging_backend.capture.records import Record
stage = sys.argv[1]; n = int(sys.argv[2])
batch = records(stage, n, 8, True)
recs = [b for b in batch if isinstance(b, Record)]
def t(fn, k=300):
    s = []
    for _ in range(k):
        t0 = time.thread_time_ns(); fn(); s.append(time.thread_time_ns() - t0)
    return statistics.median(s) / 1000
for _ in range(20): encode.encode(batch, class_names=CLASSES)
print(stage, n, "records;", "batch items", len(batch))
print(f"encode total     {t(lambda: encode.encode(batch, class_names=CLASSES)):7.0f} us")
print(f"_Flush init      {t(lambda: encode._Flush(recs, 0, {})):7.0f} us")
f = encode._Flush(recs, 0, {})
print(f"events           {t(f.events):7.0f} us")
print(f"tensors          {t(f.tensors):7.0f} us")
print(f"predictions      {t(lambda: f.predictions(CLASSES)):7.0f} us")
import pyarrow as pa, numpy as np
print(f"pa.array 8 floats {t(lambda: pa.array(np.zeros(8), type=pa.float64()), 3000):7.1f} us")
