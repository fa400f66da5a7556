-- Issue 14: requests Triton refuses before a stage runs (wrong datatype or shape, a batch over
-- max_batch_size, a missing or unknown input, an empty batch). Triton 2.51 counts them in no
-- metric and logs them only at --log-verbose=1; the launcher preloads
-- logging_backend/stack/refusal_log.c into tritonserver, which writes one line per refusal to
-- logs/refusals.log, and the collector tails it into server_logs (source 'refusal').
--   request_id   the request's id as the client sent it ('' when it sent none; an id outside
--                the request-id rule is stored as invalid-<sha256[:16]>); also filled for
--                Triton's own log lines that carry "[request id: ...]".
ALTER TABLE stagelog.server_logs
    ADD COLUMN IF NOT EXISTS request_id String AFTER model;
ALTER TABLE stagelog.server_logs
    ADD INDEX IF NOT EXISTS idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 1;

-- One row per refused request: when, which model, the id, and Triton's answer.
CREATE VIEW IF NOT EXISTS stagelog.refused_requests AS
SELECT
    ts,
    host,
    pid          AS server_pid,
    model,
    request_id,
    message      AS error
FROM stagelog.server_logs
WHERE source = 'refusal';
