-- request_id -> time window, fed by stage_events, so lineage queries prune partitions and
-- granules instead of scanning every part of every table.
CREATE TABLE IF NOT EXISTS stagelog.request_index
(
    request_id String,
    first_ts   SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    last_ts    SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(first_ts)
ORDER BY request_id
TTL toDateTime(first_ts) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS stagelog.request_index_mv TO stagelog.request_index AS
SELECT request_id, min(ts) AS first_ts, max(ts) AS last_ts
FROM stagelog.stage_events
GROUP BY request_id;
