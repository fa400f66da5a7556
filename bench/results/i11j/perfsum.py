"""Summarize perfdiff.txt: per block, CPU per request (us) of stub serving threads, stub flush
threads, tritonserver, collector, client, idle. Run: python perfsum.py perfdiff.txt"""
import re, sys
from collections import defaultdict
blocks = []
tag = ""
for line in open(sys.argv[1]):
    if line.startswith("[") or line.startswith("### "):
        tag = line.strip() + " "
    elif " requests in " in line:
        blocks.append([tag + line.split(":")[0], defaultdict(float), line.split("(")[1].split(")")[0]])
        tag = ""
        sect = None
    elif line.startswith("# "):
        sect = line.strip()
    elif blocks and sect == "# by process kind and thread name":
        m = re.match(r"\s*([\d.]+)\s+\('([^']*)', '([^']*)'\)", line)
        if not m: continue
        v, kind, th = float(m.group(1)), m.group(2), m.group(3)
        b = blocks[-1][1]
        if kind.startswith("stub:"):
            b["stub flush" if th == "sl-flush" else "stub serve"] += v
        else:
            b[kind.split(":")[0]] += v
cols = ["stub serve", "stub flush", "tritonserver", "collector", "client", "idle", "other"]
print(f"{'block':44s} {'rate':>8s} " + " ".join(f"{c:>12s}" for c in cols) + "  (us CPU per request)")
for name, b, rate in blocks:
    print(f"{name:44s} {rate:>8s} " + " ".join(f"{b[c]:12.1f}" for c in cols))
