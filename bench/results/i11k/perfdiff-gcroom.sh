#!/bin/sh
# perfdiff.py at 32 clients, 20 s windows, full logging, STAGELOG_GC_ROOM off / on alternating,
# the collector stopped during the window and running; three repetitions.
cd "$(dirname "$0")/../../.." || exit 1
for rep in 1 2 3; do
  for c in stop run; do
    for room in off on; do
      echo "### rep $rep collector $c gc_room $room"
      STAGELOG_GC_ROOM=$room .venv/bin/python bench/results/i11j/perfdiff.py 32 20 full $c /tmp/perfdiff-gcroom-$room-$c.data
    done
  done
done
