-- Arrow 8 and the ground truth, one row per scored row: the latest action and the latest label.
-- A repeated report (same request_id, row, kind, value -> same report_id) may land twice; these
-- views are what every metric reads, so duplicates never count twice. A corrected report (a new
-- value for the same row) wins by its later ts.

CREATE VIEW IF NOT EXISTS stagelog.actions_latest AS
SELECT
    request_id,
    row,
    argMax(value, ts)                                           AS action,
    -- DETAIL {"executed": false} records a decision that was not carried out.
    argMax(if(JSONHas(detail, 'executed'), JSONExtractBool(detail, 'executed'), 1), ts)
                                                                AS executed,
    argMax(detail, ts)                                          AS last_detail,
    max(ts)                                                     AS reported_at,
    uniqExact(report_id)                                        AS reports
FROM stagelog.actions
GROUP BY request_id, row;

CREATE VIEW IF NOT EXISTS stagelog.labels_latest AS
SELECT
    request_id,
    row,
    argMax(value, ts)                                           AS label,
    argMax(detail, ts)                                          AS last_detail,
    max(ts)                                                     AS labelled_at,
    uniqExact(report_id)                                        AS reports
FROM stagelog.labels
GROUP BY request_id, row;

-- Reports about a (request_id, row) that was never scored. The `feedback` stage cannot ask the
-- store (stage processes never talk to ClickHouse), so it checks the form of the id and this
-- view finds the ids that match nothing. A report can also sit here briefly while the scoring
-- request's rows are still in the spool.
CREATE VIEW IF NOT EXISTS stagelog.feedback_unmatched AS
SELECT f.kind, f.request_id, f.row, f.value, f.ts, f.report_id
FROM
(
    SELECT 'action' AS kind, request_id, row, value, ts, report_id FROM stagelog.actions
    UNION ALL
    SELECT 'label' AS kind, request_id, row, value, ts, report_id FROM stagelog.labels
) AS f
WHERE (f.request_id, f.row) NOT IN
(
    SELECT request_id, row FROM stagelog.predictions WHERE model = 'aggregate'
);
