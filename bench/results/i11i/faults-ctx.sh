cd "$(dirname "$0")/../../.."
P=.venv/bin/python
for r in 1 2; do
  $P bench/results/i11i/faults-ctx.py 32 30 off
  $P bench/results/i11i/faults-ctx.py 32 30 full stop
done
