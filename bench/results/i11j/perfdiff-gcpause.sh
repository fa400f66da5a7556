#!/bin/sh
# perfdiff.py at 32 clients, 15 s, full logging with the collector stopped and running:
# main before the change (a worktree at 1a5806e in $BASE) against the working tree (the stubs'
# garbage collector paused while the flush thread encodes a batch).
# Alternating; off from the working tree (logging off runs none of the changed code).
BASE=${BASE:-/tmp/wt-base2}
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2 3; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pdp-off-$rep.data
  echo "[base]"; .venv/bin/python $BASE/bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdp-basestop-$rep.data
  echo "[new]";  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdp-newstop-$rep.data
  echo "[base]"; .venv/bin/python $BASE/bench/results/i11j/perfdiff.py 32 15 full run /tmp/pdp-basefull-$rep.data
  echo "[new]";  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full run /tmp/pdp-newfull-$rep.data
done
