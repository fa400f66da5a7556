cd "$(dirname "$0")/../../.."
P=.venv/bin/python
for r in 1 2; do
  $P bench/results/i11i/faults-ctx.py 32 30 full
  STAGELOG_EXP_SWITCH_MS=0.5 $P bench/results/i11i/faults-ctx.py 32 30 full
  $P bench/results/i11i/faults-ctx.py 32 30 off
done
