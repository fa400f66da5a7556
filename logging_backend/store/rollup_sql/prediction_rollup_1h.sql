-- Predictions in one block range of one partition -> prediction_rollup_1h (migration 0072's
-- columns; run by logging_backend.store.rollups).
SELECT
    toStartOfHour(toDateTime(ts, 'UTC'))                        AS hour,
    model,
    model_version,
    predicted_class,
    decision,
    count()                                                     AS rows,
    sumMapState(CAST(mapKeys(class_probs), 'Array(String)'),
                arrayMap(p -> toFloat64(p), mapValues(class_probs))) AS class_prob_sums
FROM stagelog.predictions
WHERE _partition_id = {partition:String}
  AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
  -- and only the parts whose blocks meet the range (a part is <partition>_<min>_<max>_...):
  -- without it every run would read the whole partition, a day of rows
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
      > {block_from:Int64}
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
      <= {block_to:Int64}
  AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY hour, model, model_version, predicted_class, decision
