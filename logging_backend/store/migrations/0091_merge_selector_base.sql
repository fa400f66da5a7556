-- Fewer, wider merges on the tables that get an insert (a part) every collector period
-- (issue 11). With the default merge_selector_base = 5 each row of a part inserted every second
-- is rewritten by merges about log5(parts) times; 20 cuts that write amplification, for a few
-- more parts alive per partition (well under parts_to_delay_insert = 1000). Measured by
-- `python -m bench.store_cost` (variant merge-base-5 is the default again): bench/RESULTS.md.
ALTER TABLE stagelog.stage_events MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.stage_tensors MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.predictions MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.request_index MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.stage_latency_1m MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.triton_metrics MODIFY SETTING merge_selector_base = 20;
ALTER TABLE stagelog.collector_health MODIFY SETTING merge_selector_base = 20;
