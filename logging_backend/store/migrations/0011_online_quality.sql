-- Arrow 7 once labels arrive: how good each model (members and aggregate) and version is online.
-- One row per labelled prediction; p_true is the probability the model gave the true class.

CREATE VIEW IF NOT EXISTS stagelog.labelled_predictions AS
SELECT
    p.ts                                                        AS ts,
    p.request_id                                                AS request_id,
    p.row                                                       AS row,
    p.model                                                     AS model,
    p.model_version                                             AS model_version,
    p.predicted_class                                           AS predicted_class,
    l.label                                                     AS label,
    p.predicted_class = l.label                                 AS correct,
    toFloat64(p.class_probs[l.label])                           AS p_true,
    -- Clipped as scikit-learn's log_loss does, so a confident miss is finite.
    -log(greatest(toFloat64(p.class_probs[l.label]), 1e-15))    AS log_loss
FROM stagelog.predictions AS p
INNER JOIN stagelog.labels_latest AS l ON p.request_id = l.request_id AND p.row = l.row;

CREATE VIEW IF NOT EXISTS stagelog.online_accuracy AS
SELECT
    model,
    model_version,
    count()                                                     AS labelled_rows,
    avg(correct)                                                AS accuracy,
    avg(log_loss)                                               AS log_loss,
    min(ts)                                                     AS first_ts,
    max(ts)                                                     AS last_ts
FROM stagelog.labelled_predictions
GROUP BY model, model_version;

-- The same per hour of prediction time, to see quality move.
CREATE VIEW IF NOT EXISTS stagelog.online_accuracy_1h AS
SELECT
    toStartOfHour(ts)                                           AS hour,
    model,
    model_version,
    count()                                                     AS labelled_rows,
    avg(correct)                                                AS accuracy,
    avg(log_loss)                                               AS log_loss
FROM stagelog.labelled_predictions
GROUP BY hour, model, model_version;
