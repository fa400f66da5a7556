-- A request as an OpenTelemetry trace, in the column layout of the OpenTelemetry Collector's
-- ClickHouse exporter (exporter/clickhouseexporter, table otel_traces), so that Grafana's
-- ClickHouse trace view and other OpenTelemetry tooling read it as they read the exporter's table.
-- TraceId is the request id (the key of everything); one root span per request (SpanName
-- 'pipeline', SpanKind 'Server', from the first stage's start to the last stage's end) and one
-- span per stage under it (SpanKind 'Internal'). SpanIds are 16 hex digits of sipHash64, so the
-- same request always gets the same ids. Duration is in nanoseconds, as in the exporter.

CREATE VIEW IF NOT EXISTS stagelog.otel_traces AS
SELECT
    toDateTime64(ts, 9, 'UTC')                                 AS Timestamp,
    request_id                                                 AS TraceId,
    lower(hex(sipHash64(request_id, stage)))                   AS SpanId,
    lower(hex(sipHash64(request_id)))                          AS ParentSpanId,
    ''                                                         AS TraceState,
    CAST(stage, 'LowCardinality(String)')                      AS SpanName,
    CAST('Internal', 'LowCardinality(String)')                 AS SpanKind,
    CAST(model_name, 'LowCardinality(String)')                 AS ServiceName,
    CAST(map('service.name', toString(model_name), 'host.name', toString(host),
             'process.pid', toString(pid)),
         'Map(LowCardinality(String), String)')                AS ResourceAttributes,
    'stagelog'                                                 AS ScopeName,
    ''                                                         AS ScopeVersion,
    CAST(mapUpdate(
             CAST(attributes, 'Map(String, String)'),
             mapFilter((k, v) -> v != '', map(
                 'model.version', toString(model_version),
                 'triton.version', toString(triton_version),
                 'artifact.sha256', toString(artifact_sha256),
                 'device', toString(device),
                 'instance', toString(instance),
                 'policy', toString(policy),
                 'rows', toString(rows),
                 'wall_ms', toString(wall_ms),
                 'cpu_ms', toString(cpu_ms),
                 'gpu_ms', ifNull(toString(gpu_ms), ''),
                 'rss_bytes', toString(rss_bytes)))),
         'Map(LowCardinality(String), String)')                AS SpanAttributes,
    toUInt64(greatest(wall_ms, 0) * 1000000)                   AS Duration,
    CAST(if(status = 'error', 'Error', 'Ok'), 'LowCardinality(String)') AS StatusCode,
    error                                                      AS StatusMessage,
    CAST([], 'Array(DateTime64(9))')                           AS `Events.Timestamp`,
    CAST([], 'Array(LowCardinality(String))')                  AS `Events.Name`,
    CAST([], 'Array(Map(LowCardinality(String), String))')     AS `Events.Attributes`,
    CAST([], 'Array(String)')                                  AS `Links.TraceId`,
    CAST([], 'Array(String)')                                  AS `Links.SpanId`,
    CAST([], 'Array(String)')                                  AS `Links.TraceState`,
    CAST([], 'Array(Map(LowCardinality(String), String))')     AS `Links.Attributes`
FROM stagelog.stage_events
UNION ALL
SELECT
    toDateTime64(min(ts), 9, 'UTC')                            AS Timestamp,
    request_id                                                 AS TraceId,
    lower(hex(sipHash64(request_id)))                          AS SpanId,
    ''                                                         AS ParentSpanId,
    ''                                                         AS TraceState,
    CAST('pipeline', 'LowCardinality(String)')                 AS SpanName,
    CAST('Server', 'LowCardinality(String)')                   AS SpanKind,
    CAST('pipeline', 'LowCardinality(String)')                 AS ServiceName,
    CAST(map('service.name', 'pipeline', 'host.name', toString(any(host))),
         'Map(LowCardinality(String), String)')                AS ResourceAttributes,
    'stagelog'                                                 AS ScopeName,
    ''                                                         AS ScopeVersion,
    CAST(map('stages', toString(count()), 'rows', toString(max(rows)),
             'errors', toString(countIf(status = 'error'))),
         'Map(LowCardinality(String), String)')                AS SpanAttributes,
    toUInt64(greatest(
        max(toUnixTimestamp64Micro(ts) + toInt64(greatest(wall_ms, 0) * 1000))
            - min(toUnixTimestamp64Micro(ts)),
        0) * 1000)                                             AS Duration,
    CAST(if(countIf(status = 'error') > 0, 'Error', 'Ok'), 'LowCardinality(String)') AS StatusCode,
    arrayStringConcat(arrayFilter(e -> e != '', groupUniqArray(error)), '; ') AS StatusMessage,
    CAST([], 'Array(DateTime64(9))')                           AS `Events.Timestamp`,
    CAST([], 'Array(LowCardinality(String))')                  AS `Events.Name`,
    CAST([], 'Array(Map(LowCardinality(String), String))')     AS `Events.Attributes`,
    CAST([], 'Array(String)')                                  AS `Links.TraceId`,
    CAST([], 'Array(String)')                                  AS `Links.SpanId`,
    CAST([], 'Array(String)')                                  AS `Links.TraceState`,
    CAST([], 'Array(Map(LowCardinality(String), String))')     AS `Links.Attributes`
FROM stagelog.stage_events
GROUP BY request_id;
