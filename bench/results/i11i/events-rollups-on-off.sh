cd /work/main
P=.venv/bin/python
for r in 1 2; do
  $P bench/results/i11h/events.py 32 60 full
  STAGELOG_ROLLUP_INTERVAL_MS=0 $P bench/results/i11h/events.py 32 60 full
done
