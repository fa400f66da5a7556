#!/bin/sh
# perfdiff.py at 32 clients, 15 s, full logging with the collector stopped, on 1a5806e (a buffered
# record one tracked object): the stubs' gc as it is, disabled, and frozen after the model load
# (STAGELOG_EXP_GC=disable|freeze, exp-hacks.patch); off for reference. Alternating.
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2 3; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pdg2-off-$rep.data
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg2-full-$rep.data
  STAGELOG_EXP_GC=disable .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg2-nogc-$rep.data
  STAGELOG_EXP_GC=freeze .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg2-freeze-$rep.data
done
