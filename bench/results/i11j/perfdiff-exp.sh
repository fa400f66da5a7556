#!/bin/sh
# perfdiff.py at 32 clients, 15 s: off; records made and dropped at emit (STAGELOG_EXP=discard);
# records kept until the flush and dropped there unencoded (drop); full with the collector
# stopped. With the experiment switch of exp-hacks.patch (batch.py) applied, never committed.
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pde-off-$rep.data
  STAGELOG_EXP=discard .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pde-discard-$rep.data
  STAGELOG_EXP=drop .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pde-drop-$rep.data
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pde-full-$rep.data
done
