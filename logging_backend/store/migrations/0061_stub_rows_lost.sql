-- Issue 14: what a dead stub took with it. The supervisor writes one `rows_lost` service event
-- per dead stub with Triton's success count for its model at the time (`requests`); the
-- stub's own stage_events rows (same host and pid) are the requests it logged. The difference
-- is the records it had buffered and not flushed when it died (at most one flush period).
-- Probe requests (request_id 'stagelog-probe-*') are in both counts.
CREATE VIEW IF NOT EXISTS stagelog.stub_rows_lost AS
SELECT
    e.ts                                                            AS ts,
    e.host                                                          AS host,
    e.model                                                         AS model,
    e.pid                                                           AS pid,
    e.requests                                                      AS requests_counted,
    ifNull(l.logged, 0)                                             AS requests_logged,
    greatest(toInt64(e.requests) - toInt64(ifNull(l.logged, 0)), 0) AS records_lost
FROM stagelog.service_events AS e
LEFT JOIN
(
    SELECT host, pid, stage, count() AS logged
    FROM stagelog.stage_events
    GROUP BY host, pid, stage
) AS l ON l.host = e.host AND l.pid = e.pid AND l.stage = e.model
WHERE e.event = 'rows_lost';
