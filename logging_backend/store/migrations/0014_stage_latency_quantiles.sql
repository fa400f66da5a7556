-- Arrow 7: latency quantiles per stage, model and version over everything kept in stage_events
-- (per minute: stagelog.stage_latency_1m, migration 0004).
CREATE VIEW IF NOT EXISTS stagelog.stage_latency_quantiles AS
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
GROUP BY stage, model_name, model_version;
