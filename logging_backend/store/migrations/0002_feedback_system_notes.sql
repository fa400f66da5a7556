-- Arrows 8 (actions, labels), 9 (system samples) and 10 (annotations). Migrations 0010-0019
-- build on these (metrics, feedback, notes); keep these columns stable.

-- What the caller did with a decision (the `feedback` model, KIND = action).
CREATE TABLE IF NOT EXISTS stagelog.actions
(
    ts         DateTime64(6, 'UTC'),
    request_id String,
    row        UInt32,
    value      LowCardinality(String),                         -- the action taken, e.g. approve
    detail     String CODEC(ZSTD),                             -- JSON, may be empty
    report_id  String,                                         -- id of the feedback report
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (value, ts)
TTL toDateTime(ts) + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- The true class once it is known (the `feedback` model, KIND = label).
CREATE TABLE IF NOT EXISTS stagelog.labels
(
    ts         DateTime64(6, 'UTC'),
    request_id String,
    row        UInt32,
    value      LowCardinality(String),                         -- class name
    detail     String CODEC(ZSTD),
    report_id  String,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (value, ts)
TTL toDateTime(ts) + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- What the machine was doing: periodic process and GPU samples.
CREATE TABLE IF NOT EXISTS stagelog.system_samples
(
    ts            DateTime64(6, 'UTC') CODEC(Delta, ZSTD),
    host          LowCardinality(String),
    pid           UInt32,
    source        LowCardinality(String),                      -- e.g. tritonserver, collector, gpu
    cpu_percent   Float32,
    rss_bytes     UInt64,
    gpu_index     Nullable(UInt8),
    gpu_util      Nullable(Float32),
    gpu_mem_used  Nullable(UInt64),
    gpu_mem_total Nullable(UInt64),
    power_w       Nullable(Float32),
    temperature_c Nullable(Float32)
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, source, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- Meta-information: experiment scope, assumptions, outside events.
CREATE TABLE IF NOT EXISTS stagelog.annotations
(
    id         String,                                         -- UUID made by the writer
    ts         DateTime64(6, 'UTC'),
    kind       LowCardinality(String),
    title      String,
    body       String CODEC(ZSTD),
    valid_from DateTime64(6, 'UTC'),
    valid_to   Nullable(DateTime64(6, 'UTC')),
    tags       Array(LowCardinality(String)),
    author     LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(valid_from)
ORDER BY (kind, valid_from, id)
SETTINGS non_replicated_deduplication_window = 10000;
