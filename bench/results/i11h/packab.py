"""One process, interleaved: the CPU of packing one flush's tables into a v2 segment (process
time: Arrow's own thread pool included) and of reading it back as the collector does, three
ways: zstd on Arrow's thread pool (main before this change: IpcWriteOptions default), zstd in
the calling thread (use_threads=False), lz4 in the calling thread, no compression. N records a flush per stage.
Run: .venv/bin/python bench/results/i11h/packab.py [N] [rounds]"""
import statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pyarrow as pa
from bench.flush_cost import CLASSES, records
from logging_backend.capture import encode

N = int(sys.argv[1]) if len(sys.argv) > 1 else 900
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 40
WAYS = {
    "zstd-pool": pa.ipc.IpcWriteOptions(compression="zstd"),
    "zstd-1thread": pa.ipc.IpcWriteOptions(compression="zstd", use_threads=False),
    "lz4-1thread": pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False),
    "plain": pa.ipc.IpcWriteOptions(),
}
READ = pa.ipc.IpcReadOptions(use_threads=False)


def pack(tables, options):
    out = []
    for table in tables.values():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=options) as w:
            w.write_table(table)
        out.append(sink.getvalue())
    return out


print(f"# {N} records a flush (batch 8, arrows once), {ROUNDS} rounds; process CPU us per record (median)")
print(f"{'stage':<11}" + "".join(f"{w + ' pack':>20}{'read':>8}{'bytes':>9}" for w in WAYS))
for stage in ("preprocess", "features", "mlp", "aggregate"):
    tables = encode.encode(records(stage, N, 8, True), class_names=CLASSES)
    res = {w: ([], [], 0) for w in WAYS}
    for r in range(ROUNDS):
        for w in (list(WAYS) if r % 2 else list(WAYS)[::-1]):
            t0 = time.process_time(); bufs = pack(tables, WAYS[w]); t1 = time.process_time()
            for b in bufs:
                pa.ipc.open_stream(b, options=READ if w.endswith("1thread") else None).read_all()
            t2 = time.process_time()
            res[w][0].append(t1 - t0); res[w][1].append(t2 - t1)
            res[w] = (res[w][0], res[w][1], sum(b.size for b in bufs))
    m = lambda v: statistics.median(v) * 1e6 / N
    print(f"{stage:<11}" + "".join(f"{m(p):20.2f}{m(rd):8.2f}{sz / N:9.0f}" for p, rd, sz in res.values()))
