"""Where feature_rollup_1h's rollup (store/rollup_sql/feature_rollup_1h.sql) spends its CPU: the
same SELECT over the rows of CYCLES polls of REQ requests (batch 8, capture.encode's rows, the
model repository's real baseline loaded), FORMAT Null, with pieces left out or done another way;
chDB process CPU per request rolled up, rounds interleaved, medians.

Run: .venv/bin/python bench/results/i11i/featroll.py [REQ] [CYCLES] [rounds]"""
import statistics, sys, tempfile, time
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.insert_cost import flush_tables
from logging_backend import store
from logging_backend.insights import metrics

req = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 5
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
client = store.connect(f"chdb://{Path(tempfile.mkdtemp(prefix='featroll-')) / 'ch'}")
store.migrate(client)
for c in range(cycles):
    for table, parts in sorted(flush_tables(req, 8, seed=c).items()):
        store.insert_arrow(client, f"stagelog.{table}", pa.concat_tables(parts), {"async_insert": 0})
versions = [r[0] for r in client.query("SELECT DISTINCT model_version FROM stagelog.stage_tensors WHERE stage = 'features'").result_rows]
path = sorted(Path(__file__).resolve().parents[3].glob("model_repository/features/*/baseline.json"))[0]
for v in versions:
    metrics.load_baseline_file(lambda sql, params: client.query(sql, parameters=params).named_results(), path, v)
print("# features versions", versions, "baseline", path.relative_to(Path(__file__).resolve().parents[3]),
      client.query("SELECT count(), avg(length(edges)) FROM stagelog.feature_baseline").result_rows)
AGG = {
    "n": "count() AS `values`",
    "sums": "countIf(NOT isFinite(value)) AS nan_values, sumIf(value, isFinite(value)) AS value_sum",
    "bins": "sumMapState([toUInt16(arrayCount(e -> e <= value, edges))], [toUInt64(1)]) AS bins",
    "q": "quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value)) AS quantiles",
}
SCAN_IF = ("ARRAY JOIN if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,"
           " arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i")
SCAN_F32 = "ARRAY JOIN arrayMap(x -> toFloat64(x), values_f32) AS v, arrayEnumerate(values_f32) AS i"


def sql(aggs, scan=SCAN_IF, join=True):
    base = ("LEFT JOIN (SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges"
            " FROM stagelog.feature_baseline GROUP BY features_version, feature_index) AS baseline"
            " USING (features_version, feature_index)") if join else ""
    return (f"SELECT hour, features_version, feature_index, {', '.join(AGG[a] for a in aggs)} FROM ("
            f" SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, model_version AS features_version,"
            f" toUInt16((i - 1) % shape[2]) AS feature_index, v AS value FROM stagelog.stage_tensors {scan}"
            f" WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES'"
            f" AND length(shape) = 2 AND NOT startsWith(request_id, 'replay-')"
            f" AND NOT startsWith(request_id, 'stagelog-probe-')) AS served {base}"
            f" GROUP BY hour, features_version, feature_index FORMAT Null")


WAYS = {
    "current": sql(["n", "sums", "bins", "q"]),
    "count only, no join": sql(["n"], join=False),
    "count only": sql(["n"]),
    "count+sums": sql(["n", "sums"]),
    "count+bins": sql(["n", "bins"]),
    "count+quantiles": sql(["n", "q"]),
    "current, scan f32 only": sql(["n", "sums", "bins", "q"], scan=SCAN_F32),
}
# bins and counts per (feature, bin) first, then per feature: sumMap over a few rows an hour,
# the t-digests merged; the baseline's edges joined once per tensor row (all features of its
# version as one array), not once per value
TWO_STAGE = """
SELECT hour, features_version, feature_index,
       sum(n) AS `values`, sum(nans) AS nan_values, sum(vsum) AS value_sum,
       sumMapState([bin_index], [n]) AS bins,
       quantilesTDigestMergeState(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(q) AS quantiles
FROM
(
    SELECT hour, features_version, feature_index,
           toUInt16(arrayCount(e -> e <= value, all_edges[feature_index + 1])) AS bin_index,
           count() AS n, toUInt64(countIf(NOT isFinite(value))) AS nans, sumIf(value, isFinite(value)) AS vsum,
           quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value)) AS q
    FROM
    (
        SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, features_version,
               toUInt16((i - 1) % shape[2]) AS feature_index, v AS value, all_edges
        FROM
        (
            SELECT ts, model_version AS features_version, shape, values_f32, values_f64
            FROM stagelog.stage_tensors
            WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES'
              AND length(shape) = 2 AND NOT startsWith(request_id, 'replay-')
              AND NOT startsWith(request_id, 'stagelog-probe-')
        ) AS served
        LEFT JOIN
        (
            SELECT features_version,
                   arrayMap(j -> arrayElement(edges_by_index, indexOf(indexes, j)),
                            range(toUInt32(arrayMax(indexes) + 1))) AS all_edges
            FROM
            (
                SELECT features_version, groupArray(feature_index) AS indexes,
                       groupArray(edges) AS edges_by_index
                FROM
                (
                    SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges
                    FROM stagelog.feature_baseline GROUP BY features_version, feature_index
                )
                GROUP BY features_version
            )
        ) AS baseline USING (features_version)
        ARRAY JOIN if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
                   arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
    )
    GROUP BY hour, features_version, feature_index, bin_index
)
GROUP BY hour, features_version, feature_index
"""
TWO_STAGE_UNBOUNDED = TWO_STAGE
# only the baseline's features the served tensors can have (index < their width): a baseline row
# at a far feature index must not make the array every tensor row is joined with that long
TWO_STAGE = TWO_STAGE.replace("""                    FROM stagelog.feature_baseline GROUP BY features_version, feature_index""",
"""                    FROM stagelog.feature_baseline
                    WHERE feature_index < (
                        SELECT max(shape[2]) FROM stagelog.stage_tensors
                        WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES'
                          AND length(shape) = 2)
                    GROUP BY features_version, feature_index""")
assert "max(shape[2])" in TWO_STAGE
WAYS["two-stage, edges per row"] = TWO_STAGE + " FORMAT Null"
# the same, the edges of every version and feature one constant (a scalar subquery: a map from
# version to the edges by feature), looked up per value; not copied into every row, so a
# baseline row with a far feature index (65535) costs one array of that length, once
EDGES_MAP = """
(
    SELECT CAST((groupArray(features_version), groupArray(all_edges)),
                'Map(String, Array(Array(Float64)))')
    FROM
    (
        SELECT features_version,
               arrayMap(j -> arrayElement(edges_by_feature, indexOf(indexes, j)),
                        range(toUInt32(arrayMax(indexes) + 1))) AS all_edges
        FROM
        (
            SELECT features_version, groupArray(feature_index) AS indexes,
                   groupArray(edges) AS edges_by_feature
            FROM
            (
                SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges
                FROM stagelog.feature_baseline
                GROUP BY features_version, feature_index
            )
            GROUP BY features_version
        )
    )
)"""
a = TWO_STAGE.index("        LEFT JOIN")
b = TWO_STAGE.index("        ARRAY JOIN")
TWO_STAGE_CONST = (TWO_STAGE[:a] + TWO_STAGE[b:]).replace(", v AS value, all_edges", ", v AS value").replace(
    "all_edges[feature_index + 1]", f"{EDGES_MAP}[toString(features_version)][feature_index + 1]")
WAYS["two-stage, edges constant"] = TWO_STAGE_CONST + " FORMAT Null"
CHECK = {"current": sql(["n", "sums", "bins", "q"]).replace(" FORMAT Null", ""),
         "current again": sql(["n", "sums", "bins", "q"]).replace(" FORMAT Null", ""),
         "two-stage": TWO_STAGE, "two-stage, edges constant": TWO_STAGE_CONST}
got = {}
for k, q in CHECK.items():
    got[k] = client.query(
        f"SELECT hour, features_version, feature_index, `values`, nan_values, round(value_sum, 3),"
        f" toString(sumMapMerge(b)), quantilesTDigestMerge(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(qs)"
        f" FROM (SELECT *, bins AS b, quantiles AS qs FROM ({q}))"
        f" GROUP BY hour, features_version, feature_index, `values`, nan_values, value_sum ORDER BY feature_index").result_rows
exact = [r[:-1] for r in got["current"]]
for k in ("current again", "two-stage", "two-stage, edges constant"):
    same = exact == [r[:-1] for r in got[k]]
    qdiff = max(abs(a - b) for x, y in zip(got["current"], got[k]) for a, b in zip(x[-1], y[-1]))
    print(f"# {k} vs current: {len(got[k])} rows; counts, NaNs, sums and bins the same: {same};"
          f" largest quantile difference {qdiff:.4f} (t-digest estimates)")
extra = sys.argv[4:]  # more ways: name=SQL
for e in extra:
    k, v = e.split("=", 1)
    WAYS[k] = v
res = {}
for r in range(rounds + 1):
    for name in (list(WAYS) if r % 2 == 0 else list(WAYS)[::-1]):
        a = time.process_time()
        client.command(WAYS[name])
        if r:
            res.setdefault(name, []).append(time.process_time() - a)
n = req * cycles
print(f"# {n} requests' FEATURES rows, {rounds} rounds; chDB process CPU per request, median (min-max)")
for name, v in res.items():
    print(f"{name:28s} {statistics.median(v) * 1e6 / n:7.1f} us  ({min(v) * 1e6 / n:.1f}-{max(v) * 1e6 / n:.1f})")

# a hostile baseline row (the query door lets feature_baseline be inserted into): feature index
# 65535 makes every version's dense edge array 65,536 long
client.command("INSERT INTO stagelog.feature_baseline (loaded_at, features_version, feature_index, feature, edges, expected)"
               f" VALUES (now64(6), '{versions[0]}', 65535, 'far', [1.0], [0.5, 0.5])")
print("# with a baseline row at feature index 65535: one run each, chDB process CPU per request")
WAYS["two-stage, edges per row, baseline not cut"] = TWO_STAGE_UNBOUNDED + " FORMAT Null"
for name in ("two-stage, edges constant", "two-stage, edges per row", "two-stage, edges per row, baseline not cut"):
    a = time.process_time(); w = time.monotonic()
    try:
        client.command(WAYS[name])
        out = "ok"
    except Exception as exc:  # the store's memory limit, say
        out = f"failed: {str(exc)[:120]}"
    print(f"{name:28s} {(time.process_time() - a) * 1e6 / n:9.1f} us  wall {time.monotonic() - w:6.1f} s  {out}")
