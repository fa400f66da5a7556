-- Retention by aggregation: hourly rollups, filled by materialized views as rows arrive, that
-- outlive the raw rows (stage_tensors 14 days, predictions 90 days) by far: 400 days. Replays
-- ('replay-' request ids) are left out, like from every production metric.
-- Read them with the -Merge combinators (docs/queries.md, "History after raw rows expire").

-- Per served feature and hour: values, non-finite values, the sum (for the mean), the count
-- per bin of the training baseline loaded at the time (for PSI, like view feature_psi) and a
-- t-digest quantile sketch.
CREATE TABLE IF NOT EXISTS stagelog.feature_rollup_1h
(
    hour             DateTime('UTC'),
    features_version LowCardinality(String),
    feature_index    UInt16,
    `values`         SimpleAggregateFunction(sum, UInt64),
    nan_values       SimpleAggregateFunction(sum, UInt64),
    value_sum        SimpleAggregateFunction(sum, Float64),
    bins             AggregateFunction(sumMap, Array(UInt16), Array(UInt64)),
    quantiles        AggregateFunction(quantilesTDigest(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99),
                                       Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (features_version, feature_index, hour)
TTL hour + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- (Columns unqualified, joined USING: the cluster renderer reads `a.b` as a table name.)
CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.feature_rollup_1h_mv TO stagelog.feature_rollup_1h AS
SELECT
    hour,
    features_version,
    feature_index,
    count()                                                     AS `values`,
    countIf(NOT isFinite(value))                                AS nan_values,
    sumIf(value, isFinite(value))                               AS value_sum,
    sumMapState([toUInt16(arrayCount(e -> e <= value, edges))], [toUInt64(1)]) AS bins,
    quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value))
                                                                AS quantiles
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC'))                    AS hour,
        model_version                                           AS features_version,
        toUInt16((i - 1) % shape[2])                            AS feature_index,
        v                                                       AS value
    FROM stagelog.stage_tensors
    -- float32 tensors are stored in values_f32 (migration 0030), older rows in values_f64
    ARRAY JOIN if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
               arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
    WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES'
      AND length(shape) = 2 AND NOT startsWith(request_id, 'replay-')
) AS served
LEFT JOIN
(
    SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges
    FROM stagelog.feature_baseline
    GROUP BY features_version, feature_index
) AS baseline USING (features_version, feature_index)
GROUP BY hour, features_version, feature_index;

-- Per raw field and hour, from the processed rows of `preprocess`: how many rows, and how many
-- had the field imputed (missing or malformed), mapped to `other`, or clipped; field '' counts
-- the rows themselves and the duplicates.
CREATE TABLE IF NOT EXISTS stagelog.field_rollup_1h
(
    hour               DateTime('UTC'),
    preprocess_version LowCardinality(String),
    field              LowCardinality(String),
    kind               LowCardinality(String),                 -- rows | duplicate | imputed | unknown_category | clipped
    n                  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (preprocess_version, field, kind, hour)
TTL hour + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.field_rollup_1h_mv TO stagelog.field_rollup_1h AS
SELECT
    toStartOfHour(toDateTime(ts, 'UTC'))                        AS hour,
    model_version                                               AS preprocess_version,
    f.1                                                         AS field,
    f.2                                                         AS kind,
    count()                                                     AS n
FROM stagelog.stage_tensors
ARRAY JOIN values_str AS s
ARRAY JOIN arrayConcat(
    [('', 'rows')],
    if(JSONExtractBool(s, 'duplicate'), [('', 'duplicate')], []),
    arrayMap(x -> (x, 'imputed'), JSONExtract(s, 'imputed', 'Array(String)')),
    arrayMap(x -> (x, 'unknown_category'), JSONExtract(s, 'unknown_category', 'Array(String)')),
    arrayMap(x -> (x, 'clipped'), JSONExtract(s, 'clipped', 'Array(String)'))
) AS f
WHERE stage = 'preprocess' AND direction = 'output' AND name = 'PROCESSED'
  AND NOT startsWith(request_id, 'replay-')
GROUP BY hour, preprocess_version, field, kind;

-- Per model, version and hour: rows per predicted class and decision, and the sum of every
-- class probability (mean = sum / rows).
CREATE TABLE IF NOT EXISTS stagelog.prediction_rollup_1h
(
    hour            DateTime('UTC'),
    model           LowCardinality(String),
    model_version   LowCardinality(String),
    predicted_class LowCardinality(String),
    decision        LowCardinality(String),                     -- aggregate only, else ''
    rows            SimpleAggregateFunction(sum, UInt64),
    class_prob_sums AggregateFunction(sumMap, Array(String), Array(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (model, model_version, predicted_class, decision, hour)
TTL hour + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.prediction_rollup_1h_mv
TO stagelog.prediction_rollup_1h AS
SELECT
    toStartOfHour(toDateTime(ts, 'UTC'))                        AS hour,
    model,
    model_version,
    predicted_class,
    decision,
    count()                                                     AS rows,
    sumMapState(CAST(mapKeys(class_probs), 'Array(String)'),
                arrayMap(p -> toFloat64(p), mapValues(class_probs))) AS class_prob_sums
FROM stagelog.predictions
WHERE NOT startsWith(request_id, 'replay-')
GROUP BY hour, model, model_version, predicted_class, decision;

-- PSI per feature over any window of whole hours, from the rollup alone (same bins and formula
-- as view feature_psi): SELECT * FROM stagelog.feature_psi_rollup(h_from = '…', h_to = '…')
CREATE VIEW IF NOT EXISTS stagelog.feature_psi_rollup AS
WITH
    baseline AS
    (
        SELECT features_version, feature_index, argMax(feature, loaded_at) AS feature,
               argMax(expected, loaded_at) AS expected
        FROM stagelog.feature_baseline
        GROUP BY features_version, feature_index
    ),
    hist AS
    (
        SELECT features_version, feature_index, sumMapMerge(bins) AS h, sum(`values`) AS n
        FROM stagelog.feature_rollup_1h
        WHERE hour >= {h_from:DateTime('UTC')} AND hour < {h_to:DateTime('UTC')}
        GROUP BY features_version, feature_index
    )
SELECT
    b.features_version                                          AS features_version,
    b.feature_index                                             AS feature_index,
    b.feature                                                   AS feature,
    h.n                                                         AS rows,
    arrayMap(k -> (indexOf(h.h.1, k) = 0 ? 0 : h.h.2[indexOf(h.h.1, k)]) / h.n,
             range(toUInt16(length(b.expected))))               AS actual,
    b.expected                                                  AS expected,
    arraySum(arrayMap((a, e) -> (greatest(a, 1e-4) - greatest(e, 1e-4))
                                * log(greatest(a, 1e-4) / greatest(e, 1e-4)),
                      actual, b.expected))                      AS psi
FROM hist AS h
INNER JOIN baseline AS b
    ON h.features_version = b.features_version AND h.feature_index = b.feature_index;

-- What each table keeps and for how long (docs/storage.md has the same table): retention is a
-- deliberate omission too, so it is in logging_policy with the reason (stage 'store', scope and
-- policy 'retention', model_name = the table).
INSERT INTO stagelog.logging_policy
    (ts, stage, model_name, policy, sample_rate, reason, host, pid, scope)
SELECT now64(6), 'store', t.1, 'retention', 1, t.2, 'migration 0072', 0, 'retention'
FROM
(
    SELECT arrayJoin([
        ('stage_tensors', 'raw tensors (every input, output, state) kept 14 days; per feature and hour feature_rollup_1h (count, non-finite count, baseline bins for PSI, t-digest quantiles) and per raw field field_rollup_1h (imputed, unknown category, clipped, duplicates) kept 400 days'),
        ('predictions', 'every class probability kept 90 days; per model, version and hour prediction_rollup_1h (rows per class and decision, class-probability sums) kept 400 days'),
        ('stage_events', 'one row per stage per request kept 90 days; per minute stage_latency_1m (requests, rows, latency sums, max, p50/p90/p99) kept 400 days'),
        ('system_samples', 'process and GPU samples kept 30 days, not aggregated'),
        ('actions', 'kept 365 days'),
        ('labels', 'kept 365 days'),
        ('model_versions', 'kept without limit'),
        ('annotations', 'kept without limit'),
        ('logging_policy', 'kept without limit'),
        ('replays', 'kept without limit (one row per stage per replay)'),
        ('alerts', 'kept without limit (one row per firing or resolved transition)'),
        ('feature_rollup_1h', 'kept 400 days'),
        ('field_rollup_1h', 'kept 400 days'),
        ('prediction_rollup_1h', 'kept 400 days'),
        ('stage_latency_1m', 'kept 400 days')
    ]) AS t
) AS rows_to_write;
