-- Every arrow of a request in pipeline order, as readable text.
--   step: position of the stage in the pipeline (preprocess 1, features 2, members 3,
--         aggregate 4, other stages 5, feedback 6); ord: event, input, state, output, prediction.
--   kind: event | input | state | output | prediction | action | label
-- Query `lineage_of(request_id = '...')` (uses request_index to prune by time), or
-- `SELECT * FROM stagelog.lineage WHERE request_id = '...' ORDER BY step, stage, ord, name, row`.
-- lineage_stages holds what the pipeline stages wrote, lineage_feedback what callers reported
-- later; lineage is both.

CREATE VIEW IF NOT EXISTS stagelog.lineage_stages AS
SELECT
    ts,
    request_id,
    transform(toString(stage), ['preprocess', 'features', 'mlp', 'forest', 'logreg', 'aggregate'],
              [1, 2, 3, 3, 3, 4], 5) AS step,
    toString(stage) AS stage,
    toUInt8(0) AS ord,
    'event' AS kind,
    toString(model_name) AS name,
    CAST(NULL AS Nullable(UInt32)) AS row,
    concat('version ', model_version, ' sha256 ', left(artifact_sha256, 12), ' triton ',
           triton_version, ' device ', device, ' ', host, ':', toString(pid)) AS detail,
    concat('status=', status, ' wall_ms=', toString(round(wall_ms, 3)),
           ' cpu_ms=', toString(round(cpu_ms, 3)),
           if(isNull(gpu_ms), '', concat(' gpu_ms=', toString(round(assumeNotNull(gpu_ms), 3)))),
           ' rows=', toString(rows), ' rss_mb=', toString(round(rss_bytes / 1048576, 1)),
           if(policy = 'full', '', concat(' policy=', policy)),
           if(error = '', '', concat(' error: ', error))) AS value
FROM stagelog.stage_events
UNION ALL
SELECT
    ts,
    request_id,
    transform(toString(stage), ['preprocess', 'features', 'mlp', 'forest', 'logreg', 'aggregate'],
              [1, 2, 3, 3, 3, 4], 5) AS step,
    toString(stage) AS stage,
    toUInt8(transform(toString(direction), ['input', 'state', 'output'], [1, 2, 3], 4)) AS ord,
    toString(direction) AS kind,
    toString(name) AS name,
    CAST(NULL AS Nullable(UInt32)) AS row,
    concat(dtype, ' ', toString(shape), if(policy = 'full', '', concat(' policy=', policy))) AS detail,
    multiIf(notEmpty(values_str), arrayStringConcat(values_str, ' | '),
            notEmpty(values_f64), arrayStringConcat(arrayMap(x -> toString(round(x, 6)), values_f64), ', '),
            notEmpty(summary), toString(summary),
            '') AS value
FROM stagelog.stage_tensors
UNION ALL
SELECT
    ts,
    request_id,
    transform(toString(stage), ['preprocess', 'features', 'mlp', 'forest', 'logreg', 'aggregate'],
              [1, 2, 3, 3, 3, 4], 5) AS step,
    toString(stage) AS stage,
    toUInt8(5) AS ord,
    'prediction' AS kind,
    toString(model) AS name,
    CAST(row AS Nullable(UInt32)) AS row,
    concat('version ', model_version) AS detail,
    concat(predicted_class, if(decision = '', '', concat(' -> ', decision)), ' ',
           toString(class_probs)) AS value
FROM stagelog.predictions;

CREATE VIEW IF NOT EXISTS stagelog.lineage_feedback AS
SELECT
    ts,
    request_id,
    toUInt8(6) AS step,
    'feedback' AS stage,
    toUInt8(6) AS ord,
    'action' AS kind,
    toString(v) AS name,
    CAST(r AS Nullable(UInt32)) AS row,
    concat('report ', report_id) AS detail,
    d AS value
FROM (SELECT ts, request_id, row AS r, value AS v, detail AS d, report_id FROM stagelog.actions)
UNION ALL
SELECT
    ts,
    request_id,
    toUInt8(6) AS step,
    'feedback' AS stage,
    toUInt8(7) AS ord,
    'label' AS kind,
    toString(v) AS name,
    CAST(r AS Nullable(UInt32)) AS row,
    concat('report ', report_id) AS detail,
    d AS value
FROM (SELECT ts, request_id, row AS r, value AS v, detail AS d, report_id FROM stagelog.labels);

CREATE VIEW IF NOT EXISTS stagelog.lineage AS
SELECT * FROM stagelog.lineage_stages
UNION ALL
SELECT * FROM stagelog.lineage_feedback;

-- The same, for one request, ordered; the stages' rows are limited to the request's time window
-- (one minute of margin) from request_index; actions and labels arrive later and are found by
-- request_id (bloom filter).
CREATE VIEW IF NOT EXISTS stagelog.lineage_of AS
WITH (
    SELECT (count() > 0, min(first_ts) - INTERVAL 1 MINUTE, max(last_ts) + INTERVAL 1 MINUTE)
    FROM stagelog.request_index
    WHERE request_id = {request_id:String}
) AS win
SELECT *
FROM
(
    SELECT * FROM stagelog.lineage_stages
    WHERE request_id = {request_id:String} AND (NOT win.1 OR ts BETWEEN win.2 AND win.3)
    UNION ALL
    SELECT * FROM stagelog.lineage_feedback
    WHERE request_id = {request_id:String}
)
ORDER BY step, stage, ord, name, row;
