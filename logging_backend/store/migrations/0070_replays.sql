-- Replays (`stagelog replay`): a logged request sent again, from RAW through `pipeline` or one
-- member from its logged FEATURES. A replay request's id starts with 'replay-'; its arrows are
-- logged like any other request's, and one row per stage of every replay lands here, linking it
-- to the request it replays, with the comparison against the logged outputs.

CREATE TABLE IF NOT EXISTS stagelog.replays
(
    ts             DateTime64(6, 'UTC'),
    replay_id      String,                                     -- request id of the replay
    request_id     String,                                     -- the request it replays
    source         LowCardinality(String),                     -- raw | features
    stage          LowCardinality(String),
    model_version  LowCardinality(String),                     -- version the replay ran on
    logged_version LowCardinality(String),                     -- version that served
    rows           UInt32,
    match          Bool,                                       -- outputs equal bit for bit
    max_abs_diff   Float64,
    decision_flips UInt32,                                     -- aggregate rows only
    class_flips    UInt32,
    detail         String CODEC(ZSTD),                         -- JSON: per-row probabilities
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (stage, model_version, ts)
SETTINGS non_replicated_deduplication_window = 10000;

-- Production metrics leave replays out: the views that read every prediction, tensor or stage
-- event are redefined with `NOT startsWith(request_id, 'replay-')` (views that join labels or
-- actions already do: nobody reports on a replay id). Query the base tables to see replays.

CREATE OR REPLACE VIEW stagelog.member_agreement AS
SELECT
    request_id,
    row,
    min(ts)                                                     AS ts,
    anyIf(predicted_class, model = 'mlp')                       AS mlp_class,
    anyIf(predicted_class, model = 'forest')                    AS forest_class,
    anyIf(predicted_class, model = 'logreg')                    AS logreg_class,
    anyIf(predicted_class, model = 'aggregate')                 AS aggregate_class,
    uniqExactIf(predicted_class, model IN ('mlp', 'forest', 'logreg')) = 1
                                                                AS members_agree
FROM stagelog.predictions
WHERE NOT startsWith(request_id, 'replay-')
GROUP BY request_id, row
HAVING countIf(model IN ('mlp', 'forest', 'logreg')) = 3;

CREATE OR REPLACE VIEW stagelog.prediction_mix_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    model,
    model_version,
    predicted_class,
    count()                                                     AS rows
FROM stagelog.predictions
WHERE NOT startsWith(request_id, 'replay-')
GROUP BY minute, model, model_version, predicted_class;

CREATE OR REPLACE VIEW stagelog.decision_mix_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    decision,
    count()                                                     AS rows
FROM stagelog.predictions
WHERE model = 'aggregate' AND NOT startsWith(request_id, 'replay-')
GROUP BY minute, decision;

CREATE OR REPLACE VIEW stagelog.feature_values AS
SELECT
    ts,
    request_id,
    model_version                                               AS features_version,
    toUInt32(intDiv(i - 1, shape[2]))                           AS row,
    toUInt16((i - 1) % shape[2])                                AS feature_index,
    v                                                           AS value
FROM stagelog.stage_tensors
-- float32 values in values_f32 (migration 0030), older rows in values_f64
ARRAY JOIN
    if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
    arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES' AND length(shape) = 2
  AND NOT startsWith(request_id, 'replay-');

CREATE OR REPLACE VIEW stagelog.stage_latency_quantiles AS
SELECT
    stage,
    model_name,
    model_version,
    count()                                                     AS requests,
    countIf(status != 'ok')                                     AS errors,
    quantileExact(0.5)(wall_ms)                                 AS p50_ms,
    quantileExact(0.9)(wall_ms)                                 AS p90_ms,
    quantileExact(0.99)(wall_ms)                                AS p99_ms,
    max(wall_ms)                                                AS max_ms,
    avg(cpu_ms)                                                 AS mean_cpu_ms,
    quantileExact(0.5)(gpu_ms)                                  AS p50_gpu_ms,  -- NULL on CPU
    min(ts)                                                     AS first_ts,
    max(ts)                                                     AS last_ts
FROM stagelog.stage_events
WHERE NOT startsWith(request_id, 'replay-')
GROUP BY stage, model_name, model_version;

DROP VIEW IF EXISTS stagelog.stage_latency_1m_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.stage_latency_1m_mv TO stagelog.stage_latency_1m AS
SELECT
    toStartOfMinute(toDateTime(ts, 'UTC')) AS minute,
    stage,
    model_name,
    model_version,
    status,
    count() AS requests,
    sum(rows) AS rows,
    sum(wall_ms) AS wall_ms_sum,
    sum(cpu_ms) AS cpu_ms_sum,
    max(wall_ms) AS wall_ms_max,
    quantilesState(0.5, 0.9, 0.99)(wall_ms) AS wall_ms_quantiles
FROM stagelog.stage_events
WHERE NOT startsWith(request_id, 'replay-')
GROUP BY minute, stage, model_name, model_version, status;
