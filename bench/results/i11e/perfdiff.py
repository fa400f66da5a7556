"""Stub CPU by symbol, off vs spool, in us per answered request (perf at 999 Hz: a sample ~1 ms).

Input: off-sym.txt.xz / spool-sym.txt.xz (`perf report -n --no-children --sort dso,sym` of perfstub.py's
recordings); the request counts are perfstub.py's printed sent_ok (2709 off, 1964 spool).
"""
import lzma, sys
N = {"off": int(sys.argv[1]) if len(sys.argv) > 1 else 2709, "spool": int(sys.argv[2]) if len(sys.argv) > 2 else 1964}
def load(m):
    d = {}
    for line in lzma.open(f"{m}-sym.txt.xz", "rt"):  # kept xz-compressed
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            continue
        k = " ".join(parts[2:])
        d[k] = d.get(k, 0) + int(parts[1]) / N[m] * 1000
    return d
off, sp = load("off"), load("spool")
def group(d):
    g = {}
    for k, v in d.items():
        dso = k.split()[0]
        if "libc" in dso and any(s in k for s in ("malloc", "_int_free", "cfree", "unlink_chunk")):
            dso = "libc (malloc/free)"
        g[dso] = g.get(dso, 0) + v
    return g
go, gs = group(off), group(sp)
print("us of stub CPU per request:   off   spool   diff   (by shared object)")
for k in sorted(set(go) | set(gs), key=lambda k: -(gs.get(k, 0) - go.get(k, 0)))[:14]:
    print(f"{go.get(k, 0):7.0f} {gs.get(k, 0):7.0f} {gs.get(k, 0) - go.get(k, 0):+7.0f}  {k}")
print(f"{sum(off.values()):7.0f} {sum(sp.values()):7.0f} {sum(sp.values()) - sum(off.values()):+7.0f}  total")
print("\nby symbol, largest differences:")
for k in sorted(set(off) | set(sp), key=lambda k: -(sp.get(k, 0) - off.get(k, 0)))[:25]:
    print(f"{off.get(k, 0):7.0f} {sp.get(k, 0):7.0f} {sp.get(k, 0) - off.get(k, 0):+7.0f}  {k[:100]}")
