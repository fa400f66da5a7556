-- Hourly rollups made in batches instead of by materialized views (issue 11).
-- The three views of migration 0072 ran on every insert and cost the embedded store ~0.5 ms of
-- CPU per served request (bench/results/store-cost-*.txt); the same SELECTs over a minute of
-- rows at once cost a quarter of that. `logging_backend.store.rollups` now rolls up, every
-- STAGELOG_ROLLUP_INTERVAL_MS, exactly the rows inserted since its last run: the source tables
-- keep each row's insert block number (`_block_number`), and `rollup_progress` records, per
-- rollup and partition, the block range rolled up ('begun' before the insert, 'done' after;
-- the insert's deduplication token is derived from the range, so a run interrupted between
-- the two is finished by the next one without counting a row twice). Rows that arrive late
-- (an old spool, a store that was down) are rolled up when they arrive, whatever their ts.
ALTER TABLE stagelog.stage_tensors MODIFY SETTING enable_block_number_column = 1;
ALTER TABLE stagelog.predictions MODIFY SETTING enable_block_number_column = 1;

CREATE TABLE IF NOT EXISTS stagelog.rollup_progress
(
    rollup       LowCardinality(String),  -- feature_rollup_1h | field_rollup_1h | prediction_rollup_1h
    partition_id String,                  -- of the source table
    block_from   Int64,                   -- rows with block_from < _block_number <= block_to
    block_to     Int64,
    state        LowCardinality(String),  -- begun | done
    ts           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (rollup, partition_id, block_to, state)
SETTINGS non_replicated_deduplication_window = 10000;

DROP VIEW IF EXISTS stagelog.feature_rollup_1h_mv;
DROP VIEW IF EXISTS stagelog.field_rollup_1h_mv;
DROP VIEW IF EXISTS stagelog.prediction_rollup_1h_mv;

-- What the views rolled up so far is done: the batches start after it.
INSERT INTO stagelog.rollup_progress (rollup, partition_id, block_from, block_to, state)
SELECT r.rollup, p.partition_id, 0, p.top, 'done'
FROM
(
    SELECT table, partition_id, max(max_block_number) AS top
    FROM system.parts
    WHERE database = 'stagelog' AND table IN ('stage_tensors', 'predictions') AND active
    GROUP BY table, partition_id
) AS p
INNER JOIN
(
    SELECT 'feature_rollup_1h' AS rollup, 'stage_tensors' AS table
    UNION ALL SELECT 'field_rollup_1h', 'stage_tensors'
    UNION ALL SELECT 'prediction_rollup_1h', 'predictions'
) AS r ON r.table = p.table;
