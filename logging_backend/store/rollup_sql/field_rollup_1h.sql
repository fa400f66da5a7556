-- Processed rows of preprocess in one block range of one partition of stage_tensors ->
-- field_rollup_1h (migration 0072's columns; run by logging_backend.store.rollups).
SELECT
    toStartOfHour(toDateTime(ts, 'UTC'))                        AS hour,
    model_version                                               AS preprocess_version,
    f.1                                                         AS field,
    f.2                                                         AS kind,
    count()                                                     AS n
FROM stagelog.stage_tensors
ARRAY JOIN values_str AS s
ARRAY JOIN arrayConcat(
    [('', 'rows')],
    if(JSONExtractBool(s, 'duplicate'), [('', 'duplicate')], []),
    arrayMap(x -> (x, 'imputed'), JSONExtract(s, 'imputed', 'Array(String)')),
    arrayMap(x -> (x, 'unknown_category'), JSONExtract(s, 'unknown_category', 'Array(String)')),
    arrayMap(x -> (x, 'clipped'), JSONExtract(s, 'clipped', 'Array(String)'))
) AS f
WHERE _partition_id = {partition:String}
  AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
  -- and only the parts whose blocks meet the range (a part is <partition>_<min>_<max>_...):
  -- without it every run would read the whole partition, a day of rows
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
      > {block_from:Int64}
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
      <= {block_to:Int64}
  AND stage = 'preprocess' AND direction = 'output' AND name = 'PROCESSED'
  AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY hour, preprocess_version, field, kind
