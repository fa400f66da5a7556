SELECT
    hour,
    features_version,
    feature_index,
    sum(n)                                                      AS `values`,
    sum(nan_n)                                                  AS nan_values,
    sum(finite_sum)                                             AS value_sum,
    sumMapState([bin], [toUInt64(n_finite_or_all)])             AS bins,
    quantilesTDigestMergeState(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(q)
                                                                AS quantiles
FROM
(
    SELECT
        hour, features_version, feature_index,
        toUInt16(arrayCount(e -> e <= value, edges))            AS bin,
        count()                                                 AS n,
        count()                                                 AS n_finite_or_all,
        countIf(NOT isFinite(value))                            AS nan_n,
        sumIf(value, isFinite(value))                           AS finite_sum,
        quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value)) AS q
    FROM
    (
        SELECT
            toStartOfHour(toDateTime(ts, 'UTC'))                AS hour,
            model_version                                       AS features_version,
            toUInt16((i - 1) % shape[2])                        AS feature_index,
            v                                                   AS value
        FROM stagelog.stage_tensors
        ARRAY JOIN if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
                   arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
        WHERE _partition_id = {partition:String}
          AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
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
    GROUP BY hour, features_version, feature_index, bin
)
GROUP BY hour, features_version, feature_index
