"""Per-symbol diff of stub serving threads (comm triton_python_b) between two perf files, in us
of CPU per request: python perfsym.py A.data A_REQUESTS B.data B_REQUESTS [N] [COMM]"""
import re, subprocess, sys
from collections import Counter
LINE = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+([0-9a-f]+)\s+(.*) \((.*)\)$")
comm_want = sys.argv[6] if len(sys.argv) > 6 else "triton_python_b"
def load(path, n):
    c = Counter()
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,pid,tid,ip,sym,dso"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m and m.group(1) == comm_want:
            sym = m.group(5)
            if sym.startswith("[unknown]") or sym.startswith("0x"): sym = "?"
            c[(m.group(6).rsplit("/", 1)[-1], sym[:60])] += 1
    return {k: v * 1000.0 / n for k, v in c.items()}  # 999 Hz: 1 sample ~ 1 ms -> per 1000 req = us/req
a = load(sys.argv[1], int(sys.argv[2])); b = load(sys.argv[3], int(sys.argv[4]))
n = int(sys.argv[5]) if len(sys.argv) > 5 else 40
print(f"{comm_want}: A {sum(a.values()):.1f} us/req, B {sum(b.values()):.1f} us/req, B-A {sum(b.values()) - sum(a.values()):+.1f}")
dso = Counter(); 
for k, v in b.items(): dso[k[0]] += v
for k, v in a.items(): dso[k[0]] -= v
print("# by shared object, B-A"); [print(f"  {v:+8.1f}  {k}") for k, v in dso.most_common()]
diff = Counter({k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)})
print("# symbols, B-A, largest increases"); [print(f"  {v:+8.1f}  A {a.get(k,0):7.1f}  {k}") for k, v in diff.most_common(n)]
