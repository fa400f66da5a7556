-- Issue 11: every arrow stored once, float32 kept as Float32.
--   values_f32    float32 (and float16) tensors; values_f64 keeps every other number. Rows
--                 written before this migration have values_f64 only.
--   digest        first 128 bits of SHA-256 (hex) of the bytes: on an input stored by reference (the bytes
--                 the consumer received) and on an output another stage refers to (the bytes
--                 the producer sent); '' elsewhere. Numbers: C-order bytes; strings: the
--                 uint32 little-endian byte length of each element, then all the bytes.
--   source_stage, source_name
--                 set on an input stored by reference: its values are that stage's output of
--                 the same request (values_* are then empty). '' on everything stored in full.
ALTER TABLE stagelog.stage_tensors
    ADD COLUMN IF NOT EXISTS values_f32 Array(Float32) CODEC(ZSTD) AFTER values_f64;
ALTER TABLE stagelog.stage_tensors
    ADD COLUMN IF NOT EXISTS digest String CODEC(ZSTD);
ALTER TABLE stagelog.stage_tensors
    ADD COLUMN IF NOT EXISTS source_stage LowCardinality(String);
ALTER TABLE stagelog.stage_tensors
    ADD COLUMN IF NOT EXISTS source_name LowCardinality(String);

-- Every tensor with its values, wherever they are stored: an input stored by reference gets
-- the values of the producer's output it points at (`resolved` = 'ref'), matched on the
-- request, the stage and the tensor name; `digest_ok` says whether the bytes the consumer
-- received are the bytes the producer sent. Numbers as Float64 in `values_num`.
-- For one request, filter on request_id: the filter reaches both sides of the join.
CREATE OR REPLACE VIEW stagelog.tensor_values AS
SELECT
    t.ts AS ts,
    t.request_id AS request_id,
    toString(t.stage) AS stage,
    toString(t.model_version) AS model_version,
    toString(t.direction) AS direction,
    toString(t.name) AS name,
    toString(t.dtype) AS dtype,
    t.shape AS shape,
    t.policy AS policy,
    t.summary AS summary,
    if(t.source_stage = '', 'stored', 'ref') AS resolved,
    toString(t.source_stage) AS source_stage,
    toString(t.source_name) AS source_name,
    t.digest AS digest,
    if(t.source_stage = '', t.values_str, p.values_str) AS values_str,
    if(t.source_stage = '',
       if(empty(t.values_f32), t.values_f64, arrayMap(x -> toFloat64(x), t.values_f32)),
       if(empty(p.values_f32), p.values_f64, arrayMap(x -> toFloat64(x), p.values_f32)))
        AS values_num,
    if(t.source_stage = '', CAST(NULL AS Nullable(UInt8)),
       toNullable(toUInt8(p.digest = t.digest AND p.dtype = t.dtype AND p.shape = t.shape)))
        AS digest_ok
FROM stagelog.stage_tensors AS t
LEFT ANY JOIN
(
    SELECT request_id, stage, name, digest, dtype, shape, values_str, values_f32, values_f64
    FROM stagelog.stage_tensors
    WHERE direction = 'output'
) AS p
    ON p.request_id = t.request_id AND p.stage = t.source_stage AND p.name = t.source_name;

-- Arrow integrity: every arrow whose consumer-side bytes differ from what the producer stored
-- (or whose producer row is missing: not shipped yet, or lost). Empty when every arrow held.
CREATE OR REPLACE VIEW stagelog.arrow_integrity AS
SELECT
    c.ts AS ts,
    c.request_id AS request_id,
    toString(c.source_stage) AS producer,
    toString(c.source_name) AS output,
    toString(c.stage) AS consumer,
    toString(c.name) AS input,
    p.digest AS producer_digest,
    c.digest AS consumer_digest,
    toString(p.dtype) AS producer_dtype,
    toString(c.dtype) AS consumer_dtype,
    p.shape AS producer_shape,
    c.shape AS consumer_shape,
    multiIf(p.request_id = '', 'producer row missing',
            p.digest != c.digest, 'bytes differ',
            'dtype or shape differ') AS problem
FROM stagelog.stage_tensors AS c
LEFT ANY JOIN
(
    SELECT request_id, stage, name, digest, dtype, shape
    FROM stagelog.stage_tensors
    WHERE direction = 'output'
) AS p
    ON p.request_id = c.request_id AND p.stage = c.source_stage AND p.name = c.source_name
WHERE c.source_stage != ''
  AND (p.request_id = '' OR p.digest != c.digest OR p.dtype != c.dtype OR p.shape != c.shape);

-- The lineage shows values wherever they are stored (float32 and references included).
CREATE OR REPLACE VIEW stagelog.lineage_stages AS
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
    transform(stage, ['preprocess', 'features', 'mlp', 'forest', 'logreg', 'aggregate'],
              [1, 2, 3, 3, 3, 4], 5) AS step,
    stage,
    toUInt8(transform(direction, ['input', 'state', 'output'], [1, 2, 3], 4)) AS ord,
    direction AS kind,
    name,
    CAST(NULL AS Nullable(UInt32)) AS row,
    concat(dtype, ' ', toString(shape), if(policy = 'full', '', concat(' policy=', policy)),
           if(resolved = 'ref',
              concat(' = ', source_stage, '.', source_name,
                     if(digest_ok = 1, ' (digest ok)', ' (DIGEST DIFFERS or producer missing)')),
              '')) AS detail,
    multiIf(notEmpty(values_str), arrayStringConcat(values_str, ' | '),
            notEmpty(values_num), arrayStringConcat(arrayMap(x -> toString(round(x, 6)), values_num), ', '),
            notEmpty(summary), toString(summary),
            '') AS value
FROM stagelog.tensor_values
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

-- Feature values come from values_f32 (float32, since this migration) or values_f64 (before).
CREATE OR REPLACE VIEW stagelog.feature_values AS
SELECT
    ts,
    request_id,
    model_version                                               AS features_version,
    toUInt32(intDiv(i - 1, shape[2]))                           AS row,
    toUInt16((i - 1) % shape[2])                                AS feature_index,
    v                                                           AS value
FROM stagelog.stage_tensors
ARRAY JOIN
    if(empty(values_f32), values_f64, arrayMap(x -> toFloat64(x), values_f32)) AS v,
    arrayEnumerate(if(empty(values_f32), values_f64, values_f32)) AS i
WHERE stage = 'features' AND direction = 'output' AND name = 'FEATURES' AND length(shape) = 2;
