"""prediction_rollup_1h's SELECT (store/rollup_sql/prediction_rollup_1h.sql) one step (sumMap per
row) against two (per group and class set: sumForEach of the probabilities by position; then
sumMap once per group), over CYCLES polls of REQ requests (capture.encode's rows), FORMAT Null;
chDB process CPU per request, rounds interleaved, medians; and whether both give the same rows.

Run: .venv/bin/python bench/results/i11i/predroll.py [REQ] [CYCLES] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 5
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
client = store.connect(f"chdb://{Path(tempfile.mkdtemp(prefix='predroll-')) / 'ch'}")
store.migrate(client)
for c in range(cycles):
    for table, parts in sorted(flush_tables(req, 8, seed=c).items()):
        store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts), {"async_insert": 0})
WHERE = "WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')"
ONE = f"""SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, model, model_version, predicted_class, decision,
    count() AS rows,
    sumMapState(CAST(mapKeys(class_probs), 'Array(String)'), arrayMap(p -> toFloat64(p), mapValues(class_probs))) AS class_prob_sums
FROM stagelog.predictions {WHERE}
GROUP BY hour, model, model_version, predicted_class, decision"""
TWO = f"""SELECT hour, model, model_version, predicted_class, decision, sum(n) AS rows,
    sumMapState(classes, sums) AS class_prob_sums
FROM
(
    SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, model, model_version, predicted_class, decision,
        CAST(mapKeys(class_probs), 'Array(String)') AS classes, count() AS n,
        sumForEach(arrayMap(p -> toFloat64(p), mapValues(class_probs))) AS sums
    FROM stagelog.predictions {WHERE}
    GROUP BY hour, model, model_version, predicted_class, decision, classes
)
GROUP BY hour, model, model_version, predicted_class, decision"""
WAYS = {"one step (current)": ONE, "two steps": TWO}
rows = {k: client.query(f"SELECT hour, model, model_version, predicted_class, decision, rows,"
                        f" arrayMap(x -> round(x, 6), (sumMapMerge(s) AS m).2), m.1 FROM (SELECT *, class_prob_sums AS s FROM ({q}))"
                        f" GROUP BY hour, model, model_version, predicted_class, decision, rows ORDER BY ALL").result_rows
        for k, q in WAYS.items()}
print(f"# same rows both ways: {rows['one step (current)'] == rows['two steps']} ({len(rows['two steps'])} rows)")
res = {}
for r in range(rounds + 1):
    for name in (list(WAYS) if r % 2 == 0 else list(WAYS)[::-1]):
        a = time.process_time()
        client.command(WAYS[name] + " FORMAT Null")
        if r:
            res.setdefault(name, []).append(time.process_time() - a)
n = req * cycles
print(f"# {n} requests' predictions rows, {rounds} rounds; chDB process CPU per request, median (min-max)")
for name, v in res.items():
    print(f"{name:22s} {statistics.median(v) * 1e6 / n:7.1f} us  ({min(v) * 1e6 / n:.1f}-{max(v) * 1e6 / n:.1f})")
