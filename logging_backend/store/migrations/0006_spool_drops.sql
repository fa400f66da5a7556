-- The collector's counted drop policy: spool segments deleted unshipped because the spool
-- exceeded STAGELOG_SPOOL_BUDGET_MB (or could not be read). One row per drop decision.
CREATE TABLE IF NOT EXISTS stagelog.spool_drops
(
    ts           DateTime64(6, 'UTC'),
    host         LowCardinality(String),
    target_table LowCardinality(String),
    segments     UInt32,
    rows         UInt64,
    bytes        UInt64,
    reason       LowCardinality(String),        -- budget | unreadable | orphan_tmp
    detail       String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (target_table, ts)
SETTINGS non_replicated_deduplication_window = 10000;
