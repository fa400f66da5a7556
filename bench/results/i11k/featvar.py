"""EXPERIMENT: CPU of feature_rollup_1h variants over the same rows."""
import sys, tempfile, time, uuid
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pyarrow as pa
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups
requests, cycles = int(sys.argv[1]), int(sys.argv[2])
base = (Path(__file__).resolve().parents[3] / "logging_backend/store/rollup_sql/feature_rollup_1h.sql").read_text()
V = {"current": base}
V["cast"] = base.replace("arrayMap(x -> toFloat64(x), values_f32)", "CAST(values_f32, 'Array(Float64)')")
V["nodigest"] = base.replace("quantilesTDigestMergeState(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(digest)", "quantilesTDigestState(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(toFloat64(0))").replace("""        quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value))
                                                                AS digest""", "0 AS digest")
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp) / 'ch'}")
    store.migrate(client)
    for c in range(cycles):
        for table, parts in sorted(flush_tables(requests, 8, seed=c).items()):
            store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts), settings={"async_insert": 0})
    # a baseline with edges, as the demo loads one
    client.command("INSERT INTO stagelog.feature_baseline (features_version, feature_index, feature, edges, expected) SELECT '1', number, concat('f', toString(number)), arrayMap(j -> toFloat64(j) / 10, range(10)), arrayMap(j -> 0.1, range(11)) FROM numbers(45)")
    time.sleep(2)
    (part, top), = client.query("SELECT partition_id, max(max_block_number) FROM system.parts WHERE database='stagelog' AND table='stage_tensors' AND active GROUP BY partition_id").result_rows
    total = requests * cycles
    for rep in range(3):
        for name, sql in V.items():
            sql = "\n".join(l for l in sql.splitlines() if not l.strip().startswith("--"))
            t0 = time.process_time()
            client.command("INSERT INTO stagelog.feature_rollup_1h SETTINGS async_insert = 0, insert_deduplicate = 1, insert_deduplication_token = {token:String} " + sql,
                           parameters={"token": uuid.uuid4().hex, "partition": part, "block_from": 0, "block_to": top})
            print(f"rep {rep} {name:10s} {(time.process_time() - t0) / total * 1e6:7.1f} us CPU/request", flush=True)
    store.close_all()
