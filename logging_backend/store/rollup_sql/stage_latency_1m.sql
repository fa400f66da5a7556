-- Events of one block range of one partition of stage_events -> stage_latency_1m (migration
-- 0004's columns; run by logging_backend.store.rollups since 0092). Replays and health probes
-- are left out, like from every production metric (0085).
SELECT
    toStartOfMinute(toDateTime(ts, 'UTC')) AS minute,
    stage,
    model_name,
    model_version,
    status,
    count() AS requests,
    sum(rows) AS rows,
    sum(wall_ms) AS wall_ms_sum,
    sum(cpu_ms) AS cpu_ms_sum,
    max(wall_ms) AS wall_ms_max,
    quantilesState(0.5, 0.9, 0.99)(wall_ms) AS wall_ms_quantiles
FROM stagelog.stage_events
WHERE _partition_id = {partition:String}
  AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
  -- and only the parts whose blocks meet the range (a part is <partition>_<min>_<max>_...):
  -- without it every run would read the whole partition, a day of rows
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
      > {block_from:Int64}
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
      <= {block_to:Int64}
  AND NOT startsWith(request_id, 'replay-') AND NOT startsWith(request_id, 'stagelog-probe-')
GROUP BY minute, stage, model_name, model_version, status
