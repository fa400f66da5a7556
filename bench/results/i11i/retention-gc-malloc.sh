cd /work/main
P=.venv/bin/python
for r in 1 2; do
  $P bench/results/i11i/flushthreads-exp.py 32 30 off
  STAGELOG_EXP=drop $P bench/results/i11i/flushthreads-exp.py 32 30 full stop
  STAGELOG_EXP=drop STAGELOG_EXP_GC=disable $P bench/results/i11i/flushthreads-exp.py 32 30 full stop
  STAGELOG_EXP=drop MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TOP_PAD_=67108864 $P bench/results/i11i/flushthreads-exp.py 32 30 full stop
done
