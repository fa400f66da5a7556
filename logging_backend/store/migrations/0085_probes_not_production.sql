-- Supervisor probes are not production traffic. The supervisor (stack/supervisor.py) sends a
-- tiny inference to every stage every STAGELOG_PROBE_MS, with request ids 'stagelog-probe-<model>'
-- (the pipeline probe's id reaches every stage of the ensemble). Their rows stay in the base
-- tables (evidence that the health checks ran, and stub_rows_lost needs them: Triton counts the
-- probes too) but are left out of every production metric, the same way replays ('replay-' ids,
-- migration 0070) are: the views are replaced with both prefixes left out, and
-- stage_latency_1m_mv is dropped and created again with the same name and target (as 0070
-- did). The target keeps its rows; probe rows the old view rolled up before this migration
-- stay in it (at most one per stage per probe period). The DROP and CREATE run before the
-- collector ships anything, so no production row falls between them on an embedded store; on
-- a server with several collectors, a batch inserted between the two statements is missing
-- from that rollup only (the raw rows are kept). The hourly rollups' views are not recreated
-- here: migration 0090 replaces them with a batch job that leaves both prefixes out.
-- Views that join labels or actions (labelled_predictions, online_accuracy, decision_outcomes)
-- need nothing: the feedback probe is refused by the stub, so a probe id has neither.

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
WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
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
WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY minute, model, model_version, predicted_class;

CREATE OR REPLACE VIEW stagelog.decision_mix_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    decision,
    count()                                                     AS rows
FROM stagelog.predictions
WHERE model = 'aggregate' AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
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
ARRAY JOIN
    if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
    arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES' AND length(shape) = 2
  AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-');

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
WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY stage, model_name, model_version;

CREATE OR REPLACE VIEW stagelog.shipping_lag AS
SELECT
    ts,
    stored_at,
    stage,
    host,
    request_id,
    dateDiff('microsecond', ts, stored_at) / 1e6                AS lag_s
FROM stagelog.stage_events
WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-');

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
WHERE NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY minute, stage, model_name, model_version, status;
