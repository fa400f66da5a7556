-- Shipping lag: when each stage event reached the store. `stored_at` is filled by the store at
-- insert (the collector sends no such column), so `stored_at - ts` is how long a row took from
-- the stage to a queryable row: the stage's own time, the flush, the spool and the shipper.
-- Rows stored before this migration get stored_at = ts (a lag of 0, not a made-up one): the
-- column is added with that default and materialized before the default becomes the time of
-- insert.
ALTER TABLE stagelog.stage_events ADD COLUMN IF NOT EXISTS stored_at DateTime64(6, 'UTC') DEFAULT ts;

ALTER TABLE stagelog.stage_events MATERIALIZE COLUMN stored_at SETTINGS mutations_sync = 2;

ALTER TABLE stagelog.stage_events MODIFY COLUMN stored_at DateTime64(6, 'UTC') DEFAULT now64(6);

CREATE VIEW IF NOT EXISTS stagelog.shipping_lag AS
SELECT
    ts,
    stored_at,
    stage,
    host,
    request_id,
    dateDiff('microsecond', ts, stored_at) / 1e6                AS lag_s
FROM stagelog.stage_events
WHERE NOT startsWith(request_id, 'replay-');
