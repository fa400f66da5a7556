-- Core logging tables: one row per stage per request, its tensors, its predictions,
-- each model load, and every deviation from full logging.
-- Conventions (../shared/STYLE.md): MergeTree, PARTITION BY toDate(ts), ORDER BY low-cardinality
-- keys then time, bloom_filter on request_id, TTL with ttl_only_drop_parts = 1, and
-- non_replicated_deduplication_window so the collector's insert_deduplication_token is honoured.
-- Ids and timestamps are made at the source (no auto-increment: several hosts may write).

CREATE DATABASE IF NOT EXISTS stagelog;

-- One row per (request, stage): arrows 4 (model identity) and 9 (system information).
CREATE TABLE IF NOT EXISTS stagelog.stage_events
(
    ts              DateTime64(6, 'UTC') CODEC(Delta, ZSTD),  -- when the stage began the request
    request_id      String,
    rows            UInt32 DEFAULT 1,
    stage           LowCardinality(String),
    model_name      LowCardinality(String),
    model_version   LowCardinality(String),
    triton_version  LowCardinality(String),
    artifact_sha256 LowCardinality(String),
    status          LowCardinality(String) DEFAULT 'ok',       -- ok | error
    error           String CODEC(ZSTD),
    wall_ms         Float64,
    cpu_ms          Float64,
    gpu_ms          Nullable(Float64),
    device          LowCardinality(String),                    -- cpu | gpu:<index>
    gpu_mem_bytes   Nullable(UInt64),
    rss_bytes       UInt64,
    host            LowCardinality(String),
    pid             UInt32,
    instance        LowCardinality(String),                    -- Triton model instance name
    policy          LowCardinality(String) DEFAULT 'full',     -- full | sampled | summary | off
    attributes      Map(LowCardinality(String), String) CODEC(ZSTD),
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (stage, model_name, status, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Every input, output and exposed state tensor: arrows 1, 2, 3 and 5. Values are flattened in
-- C order; `shape` gives the dims (batch first). Numbers go to values_f64; strings and bytes go
-- to values_str byte for byte. Under the `summary` policy only `summary` is filled
-- (min, max, mean, nan_count, ...), under `sampled` only sampled requests appear.
CREATE TABLE IF NOT EXISTS stagelog.stage_tensors
(
    ts            DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    request_id    String,
    stage         LowCardinality(String),
    model_version LowCardinality(String),
    direction     LowCardinality(String),                      -- input | output | state
    name          LowCardinality(String),
    dtype         LowCardinality(String),                      -- numpy dtype name, or BYTES
    shape         Array(UInt32),
    values_f64    Array(Float64) CODEC(ZSTD),
    values_str    Array(String) CODEC(ZSTD),
    summary       Map(LowCardinality(String), Float64),
    policy        LowCardinality(String) DEFAULT 'full',
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (stage, name, direction, ts)
TTL toDateTime(ts) + INTERVAL 14 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Arrow 6: every class probability of every member and of the aggregate, one row per event row.
CREATE TABLE IF NOT EXISTS stagelog.predictions
(
    ts              DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    request_id      String,
    row             UInt32,
    stage           LowCardinality(String),
    model           LowCardinality(String),                    -- mlp | forest | logreg | aggregate
    model_version   LowCardinality(String),
    class_probs     Map(LowCardinality(String), Float32),
    probs           Array(Float32),                            -- in class order
    predicted_class LowCardinality(String),
    decision        LowCardinality(String),                    -- aggregate only: approve | review | decline
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (model, model_version, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Arrow 4: one row per model load (per Triton model instance), with its model card.
CREATE TABLE IF NOT EXISTS stagelog.model_versions
(
    ts              DateTime64(6, 'UTC'),
    model_name      LowCardinality(String),
    model_version   LowCardinality(String),
    artifact_sha256 String,
    triton_version  LowCardinality(String),
    model_card      String CODEC(ZSTD),                        -- JSON
    host            LowCardinality(String),
    pid             UInt32,
    instance        LowCardinality(String),
    device          LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (model_name, model_version, ts)
SETTINGS non_replicated_deduplication_window = 10000;

-- Deliberate omissions: every deviation from full logging, with the reason.
CREATE TABLE IF NOT EXISTS stagelog.logging_policy
(
    ts          DateTime64(6, 'UTC'),
    stage       LowCardinality(String),
    model_name  LowCardinality(String),
    policy      LowCardinality(String),                        -- full | sampled | summary | off
    sample_rate Float32 DEFAULT 1,
    reason      String,
    host        LowCardinality(String),
    pid         UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (stage, model_name, ts)
SETTINGS non_replicated_deduplication_window = 10000;
