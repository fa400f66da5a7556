"""One process, interleaved: the chDB insert CPU (process time, every chDB thread) of one 2 s
poll's rows per table (REQ requests of batch 8, the six stages' flushes encoded by
capture.encode and concatenated as the shipper does), four ways:

- old:  plain string columns, clickhouse-connect's Client.insert_arrow (main before this change)
- dict: LowCardinality columns as Arrow dictionaries (what capture.encode now writes), insert_arrow
- file: plain strings, written straight to an ArrowStream file, INSERT ... FROM INFILE
- new:  dictionaries and the file: logging_backend.store.insert_arrow (this change)

Run: .venv/bin/python bench/results/i11h/insab.py [REQ] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.spool.schemas import _plain

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1800
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 12
tmp = tempfile.mkdtemp(prefix="insab-")
client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
store.migrate(client)
TABLES = ("stage_events", "stage_tensors", "predictions")
new = {t: pa.concat_tables(p) for t, p in flush_tables(req, 8, seed=1).items() if t in TABLES}
old = {t: d.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in d.schema])) for t, d in new.items()}
SETTINGS = {"async_insert": 0, "insert_deduplicate": 1}
k = 0


def run(way, name):
    global k
    k += 1
    settings = {**SETTINGS, "insert_deduplication_token": f"{way}-{k}"}
    data = (new if way in ("dict", "new") else old)[name]
    if way in ("old", "dict"):
        client.insert_arrow(f"stagelog.{name}", data.unify_dictionaries(), settings=settings)
    else:
        store.insert_arrow(client, f"stagelog.{name}", data, settings)


WAYS = ("old", "dict", "file", "new")
for name in TABLES:
    for way in WAYS:
        run(way, name)  # warm
res = {}
for r in range(rounds):
    for name in TABLES:
        for way in (WAYS if r % 2 == 0 else WAYS[::-1]):
            a = time.process_time()
            run(way, name)
            res.setdefault((name, way), []).append(time.process_time() - a)
            time.sleep(0.05)
print(f"# {req} requests (batch 8) per insert, {rounds} interleaved rounds; process CPU ms per insert (median) and ratio to old")
tot = dict.fromkeys(WAYS, 0.0)
for name in TABLES:
    base = statistics.median(res[(name, "old")])
    cells = []
    for way in WAYS:
        med = statistics.median(res[(name, way)])
        tot[way] += med
        cells.append(f"{way} {med * 1e3:7.1f} ({med / base:.2f})")
    print(f"{name:14s} rows {new[name].num_rows:7d}  " + "  ".join(cells))
print("all three      " + "  ".join(f"{w} {tot[w] * 1e3:7.1f} ({tot[w] / tot['old']:.2f})" for w in WAYS)
      + f"   per request: old {tot['old'] * 1e6 / req:.1f} us, new {tot['new'] * 1e6 / req:.1f} us")
rows = client.query("SELECT table, sum(rows) FROM system.parts WHERE active AND database = 'stagelog'"
                    " AND table IN ('stage_events', 'stage_tensors', 'predictions') GROUP BY table ORDER BY table").result_rows
print("rows stored:", rows, f"(expected {(rounds + 1) * len(WAYS)} x each table's rows)")
CHECK = {
    "stage_events": ("request_id, stage", "model_name, model_version, triton_version, artifact_sha256, status, device, host, instance, policy, attributes, wall_ms"),
    "stage_tensors": ("request_id, stage, name, direction", "model_version, dtype, shape, values_f32, values_f64, values_str, summary, policy, digest, source_stage, source_name"),
    "predictions": ("request_id, row, model", "stage, model_version, class_probs, probs, predicted_class, decision"),
}
for name, (key, cols) in CHECK.items():
    (bad,) = client.query(f"SELECT count() FROM (SELECT {key}, uniqExact({cols}) AS u FROM stagelog.{name} GROUP BY {key} HAVING u > 1)").result_rows[0]
    print(f"{name}: keys whose rows differ between the ways: {bad}")
