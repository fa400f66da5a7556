-- Arrow 7: feature drift against the training baseline, as PSI per feature.
-- The baseline (bins made at training time: model_repository/features/<v>/baseline.json) is
-- loaded by `stagelog baseline load` (also run by `stagelog migrate`). Bin k of a feature holds
-- values with exactly k edges at or below them; PSI = sum((a - e) * ln(a / e)) over the bins,
-- both fractions floored at 1e-4 (logging_backend/drift.py is the reference implementation).

CREATE TABLE IF NOT EXISTS stagelog.feature_baseline
(
    loaded_at      DateTime64(6, 'UTC'),
    features_version LowCardinality(String),                   -- version of the `features` stage
    feature_index  UInt16,
    feature        LowCardinality(String),
    edges          Array(Float64),
    expected       Array(Float64),
    source         String,                                     -- file it came from
    source_sha256  String
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (features_version, feature_index);

-- Every served feature value: the FEATURES output of the `features` stage, one row per value.
-- Only fully logged requests carry values (summary/sampled policy: see logging_policy).
CREATE VIEW IF NOT EXISTS stagelog.feature_values AS
SELECT
    ts,
    request_id,
    model_version                                               AS features_version,
    toUInt32(intDiv(i - 1, shape[2]))                           AS row,
    toUInt16((i - 1) % shape[2])                                AS feature_index,
    v                                                           AS value
FROM stagelog.stage_tensors
ARRAY JOIN values_f64 AS v, arrayEnumerate(values_f64) AS i
WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES' AND length(shape) = 2;

-- PSI per feature over a time window: SELECT * FROM stagelog.feature_psi(t_from = '…', t_to = '…')
CREATE VIEW IF NOT EXISTS stagelog.feature_psi AS
WITH
    baseline AS
    (
        SELECT features_version, feature_index, argMax(feature, loaded_at) AS feature,
               argMax(edges, loaded_at) AS edges, argMax(expected, loaded_at) AS expected
        FROM stagelog.feature_baseline
        GROUP BY features_version, feature_index
    ),
    binned AS
    (
        SELECT v.features_version AS features_version, v.feature_index AS feature_index,
               arrayCount(e -> e <= v.value, b.edges) AS bin, count() AS n
        FROM stagelog.feature_values AS v
        INNER JOIN baseline AS b
            ON v.features_version = b.features_version AND v.feature_index = b.feature_index
        WHERE v.ts >= {t_from:DateTime64(6, 'UTC')} AND v.ts < {t_to:DateTime64(6, 'UTC')}
        GROUP BY features_version, feature_index, bin
    ),
    hist AS
    (
        SELECT features_version, feature_index, sumMap([toUInt64(bin)], [toUInt64(n)]) AS h
        FROM binned
        GROUP BY features_version, feature_index
    )
SELECT
    b.features_version                                          AS features_version,
    b.feature_index                                             AS feature_index,
    b.feature                                                   AS feature,
    arraySum(h.h.2)                                             AS rows,
    arrayMap(k -> (indexOf(h.h.1, k) = 0 ? 0 : h.h.2[indexOf(h.h.1, k)]) / arraySum(h.h.2),
             range(toUInt64(length(b.expected))))               AS actual,
    b.expected                                                  AS expected,
    arraySum(arrayMap((a, e) -> (greatest(a, 1e-4) - greatest(e, 1e-4))
                                * log(greatest(a, 1e-4) / greatest(e, 1e-4)),
                      actual, b.expected))                      AS psi
FROM hist AS h
INNER JOIN baseline AS b
    ON h.features_version = b.features_version AND h.feature_index = b.feature_index;
