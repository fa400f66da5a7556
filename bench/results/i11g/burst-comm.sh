#!/bin/bash
# the collector's perf samples of burst.py by thread name, per 15 s slice -> burst-comm.txt
perf script -i /tmp/exp/burst.perf.data -F comm,time 2>/dev/null | python3 -c "
import sys, collections
per = collections.defaultdict(collections.Counter); t0=None
for line in sys.stdin:
    p = line.split()
    if len(p) < 2: continue
    try: t = float(p[-1].rstrip(':'))
    except ValueError: continue
    t0 = t if t0 is None else t0
    per[int((t-t0)//15)][' '.join(p[:-1])] += 1
tot = collections.Counter()
for s in per.values(): tot.update(s)
top = [c for c,_ in tot.most_common(9)]
print('slice ' + ' '.join(f'{c[:10]:>10}' for c in top))
for i in sorted(per):
    print(f'{i:5d} ' + ' '.join(f'{per[i][c]:10d}' for c in top))
"
