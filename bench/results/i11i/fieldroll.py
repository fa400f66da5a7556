"""field_rollup_1h's SELECT (store/rollup_sql/field_rollup_1h.sql) as it is (four JSON parses of
every processed row: duplicate, imputed, unknown_category, clipped) against one parse into a
named tuple, over CYCLES polls of REQ requests (capture.encode's rows), FORMAT Null; chDB
process CPU per request, rounds interleaved, medians; and whether both give the same rows.

Run: .venv/bin/python bench/results/i11i/fieldroll.py [REQ] [CYCLES] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 5
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
client = store.connect(f"chdb://{Path(tempfile.mkdtemp(prefix='fieldroll-')) / 'ch'}")
store.migrate(client)
for c in range(cycles):
    for table, parts in sorted(flush_tables(req, 8, seed=c).items()):
        store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts), {"async_insert": 0})
# hostile and odd rows too: keys missing, wrong types, not JSON at all
client.command("""INSERT INTO stagelog.stage_tensors (ts, request_id, stage, model_version, direction, name, dtype, shape, values_str)
VALUES (now64(6), 'odd-1', 'preprocess', '1', 'output', 'PROCESSED', 'bytes', [3],
        ['{"duplicate": "yes", "imputed": "amount"}', 'not json', '{"clipped": ["ip_risk", 3], "imputed": null}'])""")
WHERE = ("WHERE stage = 'preprocess' AND direction = 'output' AND name = 'PROCESSED'"
         " AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')")
HEAD = ("SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, model_version AS preprocess_version,"
        " f.1 AS field, f.2 AS kind, count() AS n FROM stagelog.stage_tensors ARRAY JOIN values_str AS s")
TAIL = f" {WHERE} GROUP BY hour, preprocess_version, field, kind"
FOUR = HEAD + """ ARRAY JOIN arrayConcat(
    [('', 'rows')],
    if(JSONExtractBool(s, 'duplicate'), [('', 'duplicate')], []),
    arrayMap(x -> (x, 'imputed'), JSONExtract(s, 'imputed', 'Array(String)')),
    arrayMap(x -> (x, 'unknown_category'), JSONExtract(s, 'unknown_category', 'Array(String)')),
    arrayMap(x -> (x, 'clipped'), JSONExtract(s, 'clipped', 'Array(String)'))
) AS f""" + TAIL
# one parse: the tuple's alias is defined in its first use (ClickHouse aliases are global)
PARSED = ("JSONExtract(s, 'Tuple(duplicate Bool, imputed Array(String),"
          " unknown_category Array(String), clipped Array(String))')")
ONE = HEAD + f""" ARRAY JOIN arrayConcat(
    [('', 'rows')],
    if(tupleElement({PARSED} AS p, 1), [('', 'duplicate')], []),
    arrayMap(x -> (x, 'imputed'), tupleElement(p, 2)),
    arrayMap(x -> (x, 'unknown_category'), tupleElement(p, 3)),
    arrayMap(x -> (x, 'clipped'), tupleElement(p, 4))
) AS f""" + TAIL
WAYS = {"four parses (current)": FOUR, "one parse": ONE}
rows = {k: sorted(client.query(q).result_rows) for k, q in WAYS.items()}
same = rows["four parses (current)"] == rows["one parse"]
print(f"# same rows both ways: {same} ({len(rows['one parse'])} rows)")
if not same:
    print("  current only:", sorted(set(rows["four parses (current)"]) - set(rows["one parse"]))[:5])
    print("  one parse only:", sorted(set(rows["one parse"]) - set(rows["four parses (current)"]))[:5])
res = {}
for r in range(rounds + 1):
    for name in (list(WAYS) if r % 2 == 0 else list(WAYS)[::-1]):
        a = time.process_time()
        client.command(WAYS[name] + " FORMAT Null")
        if r:
            res.setdefault(name, []).append(time.process_time() - a)
n = req * cycles
print(f"# {n} requests' processed rows, {rounds} rounds; chDB process CPU per request, median (min-max)")
for name, v in res.items():
    print(f"{name:22s} {statistics.median(v) * 1e6 / n:7.1f} us  ({min(v) * 1e6 / n:.1f}-{max(v) * 1e6 / n:.1f})")
