-- Events of one block range of one partition of stage_events -> request_index (request id ->
-- first/last event time; migration 0003's columns; run by logging_backend.store.rollups since
-- 0092). Replays and probes are indexed too: lineage_of finds them like any other request.
SELECT request_id, min(ts) AS first_ts, max(ts) AS last_ts
FROM stagelog.stage_events
WHERE _partition_id = {partition:String}
  AND _block_number > {block_from:Int64} AND _block_number <= {block_to:Int64}
  -- and only the parts whose blocks meet the range (a part is <partition>_<min>_<max>_...):
  -- without it every run would read the whole partition, a day of rows
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[2])
      > {block_from:Int64}
  AND toInt64(splitByChar('_', substring(_part, length({partition:String}) + 2))[1])
      <= {block_to:Int64}
GROUP BY request_id
