-- request_index and stage_latency_1m made in batches too (issue 11), like the hourly rollups
-- of 0090. Their two materialized views ran on every stage_events insert: two more parts per
-- insert (of five a second at load), ~10 ms of the embedded store's CPU each, and the merges
-- and file churn of those parts (on a journal-less ext4 every new file scans the inodes freed in
-- the last 30 s: a third of the collector's CPU at load; bench/results/i11d/). The collector's
-- rollup job (logging_backend.store.rollups) now fills both from the events inserted since its
-- last run, exactly once by insert block number; the alert thread runs it for
-- stage_latency_1m right before it evaluates the rules, so the latency alert reads every event
-- shipped by then. lineage_of needs no index entry: a request not (yet) in request_index is
-- found by its request_id alone (bloom filter), only without the time pruning.
-- On a cluster the job does not run (block numbers are per shard): the two views stay there
-- (logging_backend.store.cluster leaves their DROP out).
ALTER TABLE stagelog.stage_events MODIFY SETTING enable_block_number_column = 1;

DROP VIEW IF EXISTS stagelog.request_index_mv;
DROP VIEW IF EXISTS stagelog.stage_latency_1m_mv;

-- What the views indexed and rolled up so far is done: the batches start after it.
INSERT INTO stagelog.rollup_progress (rollup, partition_id, block_from, block_to, state)
SELECT r.rollup, p.partition_id, 0, p.top, 'done'
FROM
(
    SELECT partition_id, max(max_block_number) AS top
    FROM system.parts
    WHERE database = 'stagelog' AND table = 'stage_events' AND active
    GROUP BY partition_id
) AS p
CROSS JOIN
(
    SELECT 'request_index' AS rollup
    UNION ALL SELECT 'stage_latency_1m'
) AS r;
