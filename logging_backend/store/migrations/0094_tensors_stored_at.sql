-- When each tensor row reached the store, as 0073 and 0093 did for stage_events and predictions:
-- `stored_at` is filled by the store at insert (the collector sends no such column). The
-- collector inserts a batch's tables one after another (predictions, stage_events,
-- stage_tensors), so a request's rows are all queryable only once its tensors are: freshness
-- (`bench.overhead`) is the latest `stored_at` of all three. Rows stored before this migration
-- get stored_at = ts (a lag of 0, not a made-up one).
ALTER TABLE stagelog.stage_tensors ADD COLUMN IF NOT EXISTS stored_at DateTime64(6, 'UTC') DEFAULT ts;

ALTER TABLE stagelog.stage_tensors MATERIALIZE COLUMN stored_at SETTINGS mutations_sync = 2;

ALTER TABLE stagelog.stage_tensors MODIFY COLUMN stored_at DateTime64(6, 'UTC') DEFAULT now64(6);
