"""One-process interleaved A/B of the flush: encode + container.pack (the segment's bytes) of
N records per stage, the encoder and spool schemas of commit BASE (files given as argv[1],
argv[2]: `git show e4ea877:logging_backend/capture/encode.py`, `...spool/schemas.py`) against
this tree's (dictionary columns), call by call alternating, thread CPU. Prints per stage the
median us per record of each, the median ratio new/base, and the packed bytes per record.
Run: .venv/bin/python bench/results/i11h/encab.py BASE_ENCODE BASE_SCHEMAS [N] [pairs]"""
import importlib.util, statistics, sys, time, types
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.flush_cost import CLASSES, records
from logging_backend.capture import encode as NEW
from logging_backend.spool import container

spec = importlib.util.spec_from_file_location("schemas_base", sys.argv[2])
OLD_SCHEMAS = importlib.util.module_from_spec(spec); spec.loader.exec_module(OLD_SCHEMAS)
src = Path(sys.argv[1]).read_text().replace(
    "from logging_backend.spool.schemas import SCHEMAS", "SCHEMAS = _OLD_SCHEMAS")
BASE = types.ModuleType("encode_base"); BASE._OLD_SCHEMAS = OLD_SCHEMAS.SCHEMAS
exec(compile(src, sys.argv[1], "exec"), BASE.__dict__)
N = int(sys.argv[3]) if len(sys.argv) > 3 else 900
PAIRS = int(sys.argv[4]) if len(sys.argv) > 4 else 60
print(f"# {N} records a flush (batch 8, arrows stored once), {PAIRS} pairs; thread CPU us per record")
for stage in ("preprocess", "features", "mlp", "aggregate"):
    batch = records(stage, N, 8, True)
    size = {}
    def run(mod):
        tables = mod.encode(batch, class_names=CLASSES)
        size[mod] = sum(len(b) for b in container.pack(tables))
    run(BASE); run(NEW)
    a, b, r = [], [], []
    for i in range(PAIRS):
        got = {}
        for mod in ((BASE, NEW) if i % 2 else (NEW, BASE)):
            t0 = time.thread_time_ns(); run(mod); got[mod] = time.thread_time_ns() - t0
        a.append(got[BASE]); b.append(got[NEW]); r.append(got[NEW] / got[BASE])
    m = lambda x: statistics.median(x) / N / 1000
    print(f"{stage:<11} base {m(a):6.2f}  new {m(b):6.2f} us/record  new/base {statistics.median(r):.2f}"
          f"   bytes/record {size[BASE] / N:7.0f} -> {size[NEW] / N:7.0f}", flush=True)
