cd "$(dirname "$0")/../../.."
P=.venv/bin/python
for r in 1 2 3; do
  STAGELOG_EXP=drop $P bench/results/i11i/faults-ctx.py 32 30 full stop
  STAGELOG_EXP=drop STAGELOG_EXP_REFDIGEST=1 $P bench/results/i11i/faults-ctx.py 32 30 full stop
done
