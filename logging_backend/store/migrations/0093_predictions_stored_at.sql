-- When each prediction row reached the store, as 0073 did for stage_events: `stored_at` is
-- filled by the store at insert (the collector sends no such column). With both, "how long
-- from a response to its rows being queryable" is read from the store itself for every request
-- (`bench.overhead`'s freshness), instead of by polling it. Rows stored before this migration
-- get stored_at = ts (a lag of 0, not a made-up one).
ALTER TABLE stagelog.predictions ADD COLUMN IF NOT EXISTS stored_at DateTime64(6, 'UTC') DEFAULT ts;

ALTER TABLE stagelog.predictions MATERIALIZE COLUMN stored_at SETTINGS mutations_sync = 2;

ALTER TABLE stagelog.predictions MODIFY COLUMN stored_at DateTime64(6, 'UTC') DEFAULT now64(6);
