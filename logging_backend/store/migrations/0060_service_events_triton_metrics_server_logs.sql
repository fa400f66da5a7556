-- Issue 14: what kept the stack serving, and every failure Triton saw itself.
-- Rows come through the spool like every other row: the supervisor writes service_events
-- segments, the collector's Triton samplers write triton_metrics and server_logs segments.

-- Crashes, unhealthy stages, restarts and give-ups, as the supervisor saw them.
CREATE TABLE IF NOT EXISTS stagelog.service_events
(
    ts           DateTime64(6, 'UTC'),
    host         LowCardinality(String),
    event_id     String,                                    -- UUID made by the supervisor
    component    LowCardinality(String),                    -- tritonserver | collector | model
    model        LowCardinality(String),                    -- the model ('' for a process)
    event        LowCardinality(String),                    -- crash | unhealthy | restart |
                                                            -- restarted | restart_failed |
                                                            -- give_up | rows_lost | shm_cleaned
    pid          UInt32,                                    -- the process it is about (0: none)
    exit_code    Nullable(Int32),                           -- when the process exited by itself
    signal       LowCardinality(String),                    -- SIGKILL, SIGSEGV... ('' if none)
    attempt      UInt32,                                    -- restart attempt since last healthy
    delay_s      Float64,                                   -- backoff before this restart
    requests     UInt64,                                    -- rows_lost: Triton's success
                                                            -- count for the model at the time
    detail       String CODEC(ZSTD),                        -- what failed, in words
    log_tail     String CODEC(ZSTD)                         -- the last log lines at the time
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (component, model, ts)
TTL toDateTime(ts) + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Triton's own Prometheus counters, gauges and summaries, sampled by the collector.
-- Counters are cumulative since the server started (they restart at 0 with the server).
CREATE TABLE IF NOT EXISTS stagelog.triton_metrics
(
    ts           DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    host         LowCardinality(String),
    server_pid   UInt32,
    metric       LowCardinality(String),                    -- e.g. nv_inference_request_failure
    model        LowCardinality(String),
    version      LowCardinality(String),
    reason       LowCardinality(String),                    -- failure reason label, if any
    labels       Map(LowCardinality(String), String),       -- every label as exported
    value        Float64
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (metric, model, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Triton's warnings and errors (its log, stubs included), tailed by the collector.
CREATE TABLE IF NOT EXISTS stagelog.server_logs
(
    ts           DateTime64(6, 'UTC'),
    host         LowCardinality(String),
    source       LowCardinality(String),                    -- tritonserver
    level        LowCardinality(String),                    -- error | warning | fatal
    pid          UInt32,                                    -- the pid in the log line
    location     LowCardinality(String),                    -- source file:line in the line
    model        LowCardinality(String),                    -- a model the message names
    message      String CODEC(ZSTD),                        -- with continuation lines
    log_file     String,                                    -- where it was read
    log_offset   UInt64                                     -- byte offset of the line there
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (level, model, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;
