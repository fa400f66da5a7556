-- Rows of stage_tensors in one block range of one partition -> feature_rollup_1h (migration 0072's
-- columns and meaning; run by logging_backend.store.rollups). Replays and health probes are left
-- out, like from every production metric.
--
-- In two steps (issue 11, bench/results/i11i/featroll.py: 0.62x of the CPU of one step): first
-- per feature and baseline bin (counts, sums, a t-digest), then per feature (the bins' counts
-- as one sumMap row each, the t-digests merged), so that no aggregate state is made per value
-- but the digest's; and the baseline's edges are joined once per tensor row (every feature of
-- its version as one array, indexed by feature), not once per value.
WITH served AS
(
    SELECT ts, model_version AS features_version, shape, values_f32, values_f64
    FROM stagelog.stage_tensors
    WHERE _partition_id = {partition:String}
      AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
      -- and only the parts whose blocks meet the range (a part is
      -- <partition>_<min>_<max>_...): without it every run would read the whole
      -- partition, a day of rows
      AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
          > {block_from:Int64}
      AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
          <= {block_to:Int64}
      AND stage = 'features' AND direction = 'output' AND name = 'FEATURES'
      AND length(shape) = 2 AND NOT startsWith(request_id, 'replay-')
      AND NOT startsWith(request_id, 'stagelog-probe-')
)
SELECT
    hour,
    features_version,
    feature_index,
    sum(n)                                                      AS `values`,
    sum(nans)                                                   AS nan_values,
    sum(finite_sum)                                             AS value_sum,
    sumMapState([bin_index], [n])                               AS bins,
    quantilesTDigestMergeState(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(digest)
                                                                AS quantiles
FROM
(
    SELECT
        hour,
        features_version,
        feature_index,
        -- edges missing (no baseline of the version, or of the feature): bin 0, as before
        toUInt16(arrayCount(e -> e <= value, all_edges[feature_index + 1])) AS bin_index,
        count()                                                 AS n,
        toUInt64(countIf(NOT isFinite(value)))                  AS nans,
        sumIf(value, isFinite(value))                           AS finite_sum,
        quantilesTDigestStateIf(0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)(value, isFinite(value))
                                                                AS digest
    FROM
    (
        SELECT
            toStartOfHour(toDateTime(ts, 'UTC'))                AS hour,
            features_version,
            toUInt16((i - 1) % shape[2])                        AS feature_index,
            v                                                   AS value,
            all_edges
        FROM served
        LEFT JOIN
        (
            -- per features version: the latest edges of every feature, at [feature_index + 1]
            SELECT
                features_version,
                arrayMap(j -> arrayElement(edges_by_feature, indexOf(indexes, j)),
                         range(toUInt32(arrayMax(indexes) + 1)))  AS all_edges
            FROM
            (
                SELECT features_version, groupArray(feature_index) AS indexes,
                       groupArray(edges) AS edges_by_feature
                FROM
                (
                    SELECT features_version, feature_index, argMax(edges, loaded_at) AS edges
                    FROM stagelog.feature_baseline
                    -- only features the range's tensors can have: a baseline row at a far
                    -- index (65535) would otherwise make every row's array that long
                    WHERE feature_index < (SELECT max(shape[2]) FROM served)
                    GROUP BY features_version, feature_index
                )
                GROUP BY features_version
            )
        ) AS baseline USING (features_version)
        -- float32 tensors are stored in values_f32 (migration 0030), older rows in values_f64
        ARRAY JOIN if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
                   arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
    )
    GROUP BY hour, features_version, feature_index, bin_index
)
GROUP BY hour, features_version, feature_index
