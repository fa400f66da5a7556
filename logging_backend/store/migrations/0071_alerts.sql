-- Alerts: the rules of logging_backend/insights/alert_rules.toml (or STAGELOG_ALERT_RULES),
-- evaluated on a schedule by the collector. One row per transition of a rule: `firing` when
-- its condition starts to hold, `resolved` when it stops. Rows are made by the evaluator with
-- its own id and time, so a retried insert adds nothing.

CREATE TABLE IF NOT EXISTS stagelog.alerts
(
    ts         DateTime64(6, 'UTC'),
    id         String,                                          -- UUID of this transition
    rule       LowCardinality(String),
    severity   LowCardinality(String),                          -- info | warning | critical
    state      LowCardinality(String),                          -- firing | resolved
    value      Nullable(Float64),                               -- what the rule measured
    threshold  Nullable(Float64),                               -- the limit it was held to
    window_s   UInt32,
    message    String,
    host       LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (rule, ts)
SETTINGS non_replicated_deduplication_window = 10000;

-- The latest transition of every rule: what is firing now.
CREATE VIEW IF NOT EXISTS stagelog.alerts_current AS
SELECT
    rule,
    argMax(state, ts)                                           AS state,
    argMax(severity, ts)                                        AS severity,
    argMax(value, ts)                                           AS value,
    argMax(threshold, ts)                                       AS threshold,
    argMax(message, ts)                                         AS message,
    max(ts)                                                     AS since,
    countIf(alerts.state = 'firing')                            AS times_fired
FROM stagelog.alerts
GROUP BY rule;
