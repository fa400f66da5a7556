"""Main threads of the stubs, off -> spool at 32 clients: us per request by symbol (perfstub32.py's
recordings; the per-request totals 4.334 / 4.70 ms are samples (999 Hz) / answered requests)."""
import lzma, sys
def load(f, total_ms):
    d = {}
    for line in lzma.open(f, "rt"):  # kept xz-compressed
        parts = line.split()
        if not parts or not parts[0].endswith("%"): continue
        d[" ".join(parts[2:])] = d.get(" ".join(parts[2:]), 0) + float(parts[0][:-1]) / 100 * total_ms * 1000
    return d
off = load("perfstub32-off-main-sym.txt.xz", 4.334); sp = load("perfstub32-spool-main-sym.txt.xz", 4.70)
diff = sorted(((sp.get(k, 0) - off.get(k, 0), k) for k in set(off) | set(sp)), reverse=True)
print("top increases (us/req, main threads):")
for v, k in diff[:30]: print(f"{v:7.1f}  {off.get(k,0):7.1f} -> {sp.get(k,0):7.1f}  {k[:90]}")
print("top decreases:")
for v, k in diff[-8:]: print(f"{v:7.1f}  {k[:90]}")
