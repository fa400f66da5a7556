-- The collector's own health, one row every STAGELOG_HEALTH_INTERVAL_S (default 10 s) per
-- collector: the figures its /metrics serves (logging_backend.collector.health), kept in the
-- store so that the Grafana dashboard (ClickHouse data source only) can chart them.

CREATE TABLE IF NOT EXISTS stagelog.collector_health
(
    ts                   DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    host                 LowCardinality(String),
    pid                  UInt32,
    pending_segments     UInt64,
    pending_bytes        UInt64,
    oldest_segment_age_s Float64,
    rows_shipped         UInt64,                      -- since the collector started
    inserts              UInt64,
    insert_failures      UInt64,
    transient_failures   UInt64,
    dropped_segments     UInt64,
    last_insert_age_s    Nullable(Float64),           -- NULL: nothing inserted yet
    queries              UInt64,
    queries_refused      UInt64,
    rows_by_table        Map(LowCardinality(String), UInt64),
    drops_by_reason      Map(LowCardinality(String), UInt64)
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
TTL toDateTime(ts) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;
