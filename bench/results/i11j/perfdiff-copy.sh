#!/bin/sh
# perfdiff.py at 32 clients, 15 s, collector stopped: records made and dropped at emit
# (STAGELOG_EXP=discard), with the snapshots' copies and without them (STAGELOG_EXP_NOCOPY=1:
# the numpy array kept by reference); off for reference. Switches of exp-hacks.patch, on 1a5806e.
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2 3; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pdc-off-$rep.data
  STAGELOG_EXP=discard .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdc-discard-$rep.data
  STAGELOG_EXP=discard STAGELOG_EXP_NOCOPY=1 .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdc-nocopy-$rep.data
done
