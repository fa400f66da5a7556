"""EXPERIMENT: the embedded store's CPU when idle, and per trivial query.
Run: .venv/bin/python bench/results/i11l/chdb_idle_select.py [IDLE_SECONDS]"""
import statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from logging_backend import store

idle = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
with tempfile.TemporaryDirectory() as tmp:
    c = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(c)
    time.sleep(3)
    c0 = time.process_time(); w0 = time.monotonic()
    time.sleep(idle)
    cpu = time.process_time() - c0; wall = time.monotonic() - w0
    print(f"idle migrated store: {cpu * 1e3:.0f} ms CPU in {wall:.1f} s = {cpu / wall * 100:.2f} % of a core")
    for q in ("SELECT 1", "SELECT count() FROM stagelog.stage_events"):
        xs = []
        for _ in range(21):
            time.sleep(0.1)
            c0 = time.process_time(); c.query(q); xs.append((time.process_time() - c0) * 1e3)
        print(f"{q}: median {statistics.median(xs):.2f} ms of process CPU (21 runs, 0.1 s apart)")
    store.close_all()
