-- Arrow 7: per-stage latency and throughput per minute, kept far longer than raw events.
-- Read with: sum(requests), quantilesMerge(0.5, 0.9, 0.99)(wall_ms_quantiles), ...
CREATE TABLE IF NOT EXISTS stagelog.stage_latency_1m
(
    minute            DateTime('UTC'),
    stage             LowCardinality(String),
    model_name        LowCardinality(String),
    model_version     LowCardinality(String),
    status            LowCardinality(String),
    requests          SimpleAggregateFunction(sum, UInt64),
    rows              SimpleAggregateFunction(sum, UInt64),
    wall_ms_sum       SimpleAggregateFunction(sum, Float64),
    cpu_ms_sum        SimpleAggregateFunction(sum, Float64),
    wall_ms_max       SimpleAggregateFunction(max, Float64),
    wall_ms_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (stage, model_name, model_version, status, minute)
TTL minute + INTERVAL 400 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

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
GROUP BY minute, stage, model_name, model_version, status;
