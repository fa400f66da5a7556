#!/bin/sh
# perfdiff.py at 32 clients, 15 s windows, alternating: off, full with the collector stopped, full.
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2; do
  for m in "off" "full stop" "full"; do
    set -- $m
    .venv/bin/python bench/results/i11j/perfdiff.py 32 15 $1 ${2:-run} /tmp/perfdiff-$1-${2:-run}-$rep.data
  done
done
