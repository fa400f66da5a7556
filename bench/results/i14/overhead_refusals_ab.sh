#!/bin/bash
# A/B of the refusal shim: bench.overhead mode off, STAGELOG_REFUSALS=off vs on, alternating.
cd /work/wt-i14-refused
for round in 1 2; do
  for r in off on; do
    echo "=== round $round STAGELOG_REFUSALS=$r $(date -u +%FT%TZ)"
    STAGELOG_REFUSALS=$r nice -n 19 .venv/bin/python -m bench.overhead --modes off --concurrency 8 --repetitions 3 \
      --json bench/results/i14/overhead_refusals_${r}_round${round}.json 2>&1 | tail -25
  done
done
