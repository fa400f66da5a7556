import time, statistics
from bench.flush_cost import records
from logging_backend.capture import encode
tot = dig = 0.0
orig_n, orig_s = encode._numeric_digests, encode._string_digests
acc = [0.0]
def wrap(f):
    def g(*a):
        t = time.thread_time(); r = f(*a); acc[0] += time.thread_time() - t; return r
    return g
for stage in ["preprocess", "features", "mlp", "forest", "logreg", "aggregate"]:
    recs = records(stage, 800, 8, True)
    for _ in range(3): encode.encode(recs)
    encode._numeric_digests, encode._string_digests = wrap(orig_n), wrap(orig_s)
    acc[0] = 0.0
    t0 = time.thread_time()
    for _ in range(20): encode.encode(recs)
    t = (time.thread_time() - t0) / 20 / 800 * 1e6; d = acc[0] / 20 / 800 * 1e6
    encode._numeric_digests, encode._string_digests = orig_n, orig_s
    print(f"{stage:10s} encode {t:5.2f} us/rec, digests {d:5.2f} us/rec")
    tot += t; dig += d
print(f"all stages: encode {tot:.1f} us/request, digests {dig:.1f} us/request ({dig/tot*100:.0f} %)")
