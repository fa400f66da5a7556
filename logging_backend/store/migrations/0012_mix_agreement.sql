-- Arrow 7: what the pipeline predicts and decides, whether its members agree, and what callers
-- did with the decisions.

-- One row per scored row: each member's class and whether all three agree.
CREATE VIEW IF NOT EXISTS stagelog.member_agreement AS
SELECT
    request_id,
    row,
    min(ts)                                                     AS ts,
    anyIf(predicted_class, model = 'mlp')                       AS mlp_class,
    anyIf(predicted_class, model = 'forest')                    AS forest_class,
    anyIf(predicted_class, model = 'logreg')                    AS logreg_class,
    anyIf(predicted_class, model = 'aggregate')                 AS aggregate_class,
    uniqExactIf(predicted_class, model IN ('mlp', 'forest', 'logreg')) = 1
                                                                AS members_agree
FROM stagelog.predictions
GROUP BY request_id, row
HAVING countIf(model IN ('mlp', 'forest', 'logreg')) = 3;

CREATE VIEW IF NOT EXISTS stagelog.member_agreement_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    count()                                                     AS rows,
    sum(members_agree)                                          AS agreeing_rows,
    avg(members_agree)                                          AS agreement_rate
FROM stagelog.member_agreement
GROUP BY minute;

CREATE VIEW IF NOT EXISTS stagelog.prediction_mix_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    model,
    model_version,
    predicted_class,
    count()                                                     AS rows
FROM stagelog.predictions
GROUP BY minute, model, model_version, predicted_class;

CREATE VIEW IF NOT EXISTS stagelog.decision_mix_1m AS
SELECT
    toStartOfMinute(ts)                                         AS minute,
    decision,
    count()                                                     AS rows
FROM stagelog.predictions
WHERE model = 'aggregate'
GROUP BY minute, decision;

-- Decision vs. what the caller reports having done, and whether it was carried out.
CREATE VIEW IF NOT EXISTS stagelog.decision_outcomes AS
SELECT
    p.decision                                                  AS decision,
    a.action                                                    AS action,
    a.executed                                                  AS executed,
    count()                                                     AS rows
FROM stagelog.predictions AS p
INNER JOIN stagelog.actions_latest AS a ON p.request_id = a.request_id AND p.row = a.row
WHERE p.model = 'aggregate'
GROUP BY decision, action, executed;
