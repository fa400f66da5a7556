-- What a stage computes at model load, stored instead of thrown away (issue 10):
-- the per-file artifact digests and the model configuration Triton handed the instance,
-- the scope of a logging_policy notice ("tensors", "buffer", "device", ...) and, for drops,
-- the number of records as a number rather than inside the reason text.
ALTER TABLE stagelog.model_versions
    ADD COLUMN IF NOT EXISTS artifacts Map(String, String) CODEC(ZSTD);
ALTER TABLE stagelog.model_versions
    ADD COLUMN IF NOT EXISTS model_config String CODEC(ZSTD);
ALTER TABLE stagelog.logging_policy
    ADD COLUMN IF NOT EXISTS scope LowCardinality(String) DEFAULT 'tensors';
ALTER TABLE stagelog.logging_policy
    ADD COLUMN IF NOT EXISTS dropped UInt64 DEFAULT 0;
