#!/bin/sh
# perfdiff.py at 32 clients, 15 s, collector stopped: records kept until the flush and dropped
# unencoded (STAGELOG_EXP=drop), with the stubs' gc as it is, disabled (STAGELOG_EXP_GC=disable),
# and with the record kept but its tensor lists emptied at emit (STAGELOG_EXP_NOTENSORS=1);
# off and full for reference. Experiment switches never committed (exp-hacks.patch).
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2; do
  .venv/bin/python bench/results/i11j/perfdiff.py 32 15 off run /tmp/pdg-off-$rep.data
  STAGELOG_EXP=drop .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg-drop-$rep.data
  STAGELOG_EXP=drop STAGELOG_EXP_GC=disable .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg-dropnogc-$rep.data
  STAGELOG_EXP=drop STAGELOG_EXP_NOTENSORS=1 .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg-dropnot-$rep.data
  STAGELOG_EXP_GC=disable .venv/bin/python bench/results/i11j/perfdiff.py 32 15 full stop /tmp/pdg-fullnogc-$rep.data
done
