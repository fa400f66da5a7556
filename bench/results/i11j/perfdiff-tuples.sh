#!/bin/sh
# perfdiff.py at 32 clients, 15 s, full logging with the collector stopped and running:
# main before the change (a worktree at 36d25e3 in $BASE) against the working tree (a buffered
# record one GC-tracked object: its lists made tuples at exit, state mappings one entry per key).
# Alternating; off from the working tree (logging off runs none of the changed code).
BASE=${BASE:-/tmp/wt-base}
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2 3; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pdt-off-$rep.data
  echo "[base]"; .venv/bin/python $BASE/bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdt-basestop-$rep.data
  echo "[new]";  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdt-newstop-$rep.data
  echo "[base]"; .venv/bin/python $BASE/bench/results/i11j/perfdiff.py 32 15 full run /tmp/pdt-basefull-$rep.data
  echo "[new]";  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full run /tmp/pdt-newfull-$rep.data
done
