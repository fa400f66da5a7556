import sys, tempfile, time, resource, statistics
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, "/work/main")
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.store import rollups
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
cycles, req = 20, 200
tables = [flush_tables(req, 8, seed=c) for c in range(cycles)]
CUR = (rollups.SQL_DIR / "feature_rollup_1h.sql").read_text()
NEW = open("/tmp/exp/feature_new.sql").read()
with tempfile.TemporaryDirectory() as tmp:
    client = store.connect(f"chdb://{Path(tmp)/'ch'}")
    store.migrate(client)
    from logging_backend.insights import metrics
    for t in tables:
        for name, parts in sorted(t.items()):
            client.insert_arrow(f"stagelog.{name}", pa.concat_tables(parts), settings={"async_insert": 0})
    # a baseline so that bins are counted
    client.command("INSERT INTO stagelog.feature_baseline (features_version, feature_index, edges) SELECT '1', number, [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0] FROM numbers(45)") if True else None
    time.sleep(2)
    (pid, top), = client.query("SELECT partition_id, max(max_block_number) FROM system.parts WHERE database='stagelog' AND table='stage_tensors' AND active GROUP BY partition_id").result_rows
    params = {"partition": pid, "block_from": 0, "block_to": int(top)}
    res = {}
    for rep in range(3):
        for label, sql in (("current", CUR), ("two-level", NEW)):
            c0 = cpu()
            rows = client.query(f"SELECT hour, features_version, feature_index, `values`, nan_values, value_sum, finalizeAggregation(bins), finalizeAggregation(quantiles) FROM ({sql}) ORDER BY features_version, feature_index, hour", parameters=params).result_rows
            res.setdefault(label, []).append(cpu() - c0)
            res.setdefault(label + "-rows", rows)
    for label in ("current", "two-level"):
        print(f"{label:10s} cpu {statistics.median(res[label])*1e3:7.1f} ms = {statistics.median(res[label])/(cycles*req)*1e6:6.1f} us/request  rows {len(res[label+'-rows'])}")
    a, b = res["current-rows"], res["two-level-rows"]
    same = len(a) == len(b) and all(x[:6] == y[:6] and x[6] == y[6] for x, y in zip(a, b))
    qd = max((abs(p - q) for x, y in zip(a, b) for p, q in zip(x[7], y[7])), default=0)
    print("same counts, sums and bins:", same, " max quantile difference:", qd)
    if not same:
        for x, y in list(zip(a, b))[:3]: print(x[:7]); print(y[:7])
