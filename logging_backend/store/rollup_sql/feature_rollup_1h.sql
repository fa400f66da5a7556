-- Rows of stage_tensors in one block range of one partition -> feature_rollup_1h (migration 0072's
-- columns and meaning; run by logging_backend.store.rollups). Replays and health probes are left
-- out, like from every production metric.
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
    WHERE _partition_id = {partition:String}
      AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
      -- and only the parts whose blocks meet the range (a part is <partition>_<min>_<max>_...):
      -- without it every run would read the whole partition, a day of rows
      AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
          > {block_from:Int64}
      AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
          <= {block_to:Int64}
      AND stage = 'features' AND direction = 'output' AND name = 'FEATURES'
      AND length(shape) = 2 AND NOT startsWith(request_id, 'replay-')
      AND NOT startsWith(request_id, 'stagelog-probe-')
) AS served
LEFT JOIN
(
    SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges
    FROM stagelog.feature_baseline
    GROUP BY features_version, feature_index
) AS baseline USING (features_version, feature_index)
GROUP BY hour, features_version, feature_index
