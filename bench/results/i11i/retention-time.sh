cd /work/main
P=.venv/bin/python
for r in 1 2; do
  $P bench/results/i11i/flushthreads-exp.py 32 30 off
  STAGELOG_EXP=drop $P bench/results/i11i/flushthreads-exp.py 32 30 full stop
  STAGELOG_EXP=drop $P bench/results/i11i/flushthreads-exp.py 32 30 tuned stop
  STAGELOG_EXP=discard $P bench/results/i11i/flushthreads-exp.py 32 30 full stop
done
