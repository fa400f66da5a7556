"""The Arrow schema of every spool table: one place, tested against the migrations.

Column names are the ClickHouse column names of ``stagelog.<table>``; a segment may carry a
subset (missing columns take the table's defaults). ``tests/unit/spool/test_schemas.py``
checks every schema here against the columns the migrations create.
"""

from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
# A LowCardinality(String) column of the busy tables: one dictionary per column and segment, so
# the store maps indices instead of hashing every row's string (issue 11: 0.76-0.86x of an
# insert's CPU, bench/results/i11h/); ``conform`` casts segments written with plain strings.
LC_STR = pa.dictionary(pa.int32(), pa.string())
_LC = LC_STR

SCHEMAS: dict[str, pa.Schema] = {
    "stage_events": pa.schema(
        [
            ("ts", _TS),
            ("request_id", _STR),
            ("rows", pa.uint32()),
            ("stage", _LC),
            ("model_name", _LC),
            ("model_version", _LC),
            ("triton_version", _LC),
            ("artifact_sha256", _LC),
            ("status", _LC),
            ("error", _STR),
            ("wall_ms", pa.float64()),
            ("cpu_ms", pa.float64()),
            ("gpu_ms", pa.float64()),
            ("device", _LC),
            ("gpu_mem_bytes", pa.uint64()),
            ("rss_bytes", pa.uint64()),
            ("host", _LC),
            ("pid", pa.uint32()),
            ("instance", _LC),
            ("policy", _LC),
            ("attributes", pa.map_(_LC, _STR)),
        ]
    ),
    "stage_tensors": pa.schema(
        [
            ("ts", _TS),
            ("request_id", _STR),
            ("stage", _LC),
            ("model_version", _LC),
            ("direction", _LC),
            ("name", _LC),
            ("dtype", _LC),
            ("shape", pa.list_(pa.uint32())),
            ("values_f64", pa.list_(pa.float64())),
            ("values_f32", pa.list_(pa.float32())),  # float32/float16 tensors (migration 0030)
            ("values_str", pa.list_(pa.binary())),
            ("summary", pa.map_(_LC, pa.float64())),
            ("policy", _LC),
            ("digest", _STR),  # at both ends of an arrow (migration 0030)
            ("source_stage", _LC),  # an input stored as a reference to this stage's output
            ("source_name", _LC),
        ]
    ),
    "predictions": pa.schema(
        [
            ("ts", _TS),
            ("request_id", _STR),
            ("row", pa.uint32()),
            ("stage", _LC),
            ("model", _LC),
            ("model_version", _LC),
            ("class_probs", pa.map_(_LC, pa.float32())),
            ("probs", pa.list_(pa.float32())),
            ("predicted_class", _LC),
            ("decision", _LC),
        ]
    ),
    "model_versions": pa.schema(
        [
            ("ts", _TS),
            ("model_name", _STR),
            ("model_version", _STR),
            ("artifact_sha256", _STR),
            ("triton_version", _STR),
            ("model_card", _STR),
            ("host", _STR),
            ("pid", pa.uint32()),
            ("instance", _STR),
            ("device", _STR),
            ("artifacts", pa.map_(_STR, _STR)),
            ("model_config", _STR),
        ]
    ),
    "logging_policy": pa.schema(
        [
            ("ts", _TS),
            ("stage", _STR),
            ("model_name", _STR),
            ("policy", _STR),
            ("sample_rate", pa.float32()),
            ("reason", _STR),
            ("host", _STR),
            ("pid", pa.uint32()),
            ("scope", _STR),
            ("dropped", pa.uint64()),
        ]
    ),
}

# Reports of the `feedback` model (migration 0002): the same columns in both tables.
_REPORT = pa.schema(
    [
        ("ts", _TS),
        ("request_id", _STR),
        ("row", pa.uint32()),
        ("value", _STR),
        ("detail", _STR),
        ("report_id", _STR),
    ]
)
SCHEMAS["actions"] = _REPORT
SCHEMAS["labels"] = _REPORT

SCHEMAS["system_samples"] = pa.schema(
    [
        ("ts", _TS),
        ("host", _STR),
        ("pid", pa.uint32()),
        ("source", _STR),
        ("cpu_percent", pa.float32()),
        ("rss_bytes", pa.uint64()),
        ("gpu_index", pa.uint8()),
        ("gpu_util", pa.float32()),
        ("gpu_mem_used", pa.uint64()),
        ("gpu_mem_total", pa.uint64()),
        ("power_w", pa.float32()),
        ("temperature_c", pa.float32()),
    ]
)

# The collector's counted drops (migration 0006).
SCHEMAS["spool_drops"] = pa.schema(
    [
        ("ts", _TS),
        ("host", _STR),
        ("target_table", _STR),
        ("segments", pa.uint32()),
        ("rows", pa.uint64()),
        ("bytes", pa.uint64()),
        ("reason", _STR),
        ("detail", _STR),
    ]
)



# Crashes, restarts and give-ups the supervisor saw (migration 0060).
SCHEMAS["service_events"] = pa.schema(
    [
        ("ts", _TS),
        ("host", _STR),
        ("event_id", _STR),
        ("component", _STR),
        ("model", _STR),
        ("event", _STR),
        ("pid", pa.uint32()),
        ("exit_code", pa.int32()),
        ("signal", _STR),
        ("attempt", pa.uint32()),
        ("delay_s", pa.float64()),
        ("requests", pa.uint64()),
        ("detail", _STR),
        ("log_tail", _STR),
    ]
)

# Triton's own metrics, sampled by the collector (migration 0060).
SCHEMAS["triton_metrics"] = pa.schema(
    [
        ("ts", _TS),
        ("host", _STR),
        ("server_pid", pa.uint32()),
        ("metric", _STR),
        ("model", _STR),
        ("version", _STR),
        ("reason", _STR),
        ("labels", pa.map_(_STR, _STR)),
        ("value", pa.float64()),
    ]
)

# Triton's warnings and errors, tailed by the collector (migration 0060).
SCHEMAS["server_logs"] = pa.schema(
    [
        ("ts", _TS),
        ("host", _STR),
        ("source", _STR),
        ("level", _STR),
        ("pid", pa.uint32()),
        ("location", _STR),
        ("model", _STR),
        ("request_id", _STR),
        ("message", _STR),
        ("log_file", _STR),
        ("log_offset", pa.uint64()),
    ]
)


def _plain(typ: pa.DataType) -> pa.DataType:
    """``typ`` with every dictionary replaced by its values' type (map keys too)."""
    if pa.types.is_dictionary(typ):
        return typ.value_type
    if pa.types.is_map(typ):
        return pa.map_(_plain(typ.key_type), _plain(typ.item_type))
    return typ


def conform(name: str, data: pa.Table) -> pa.Table:
    """``data`` of spool table ``name`` with the dictionary columns :data:`SCHEMAS` declares.

    For segments written before those columns became dictionaries (plain strings there): such a
    column is cast to the schema's dictionary type. Every other column, and a table of an
    unknown name, is left as it is (the store converts what it can, as before).
    """
    schema = SCHEMAS.get(name)
    if schema is None or data.schema.equals(schema):
        return data
    for i, field in enumerate(data.schema):
        if field.name not in schema.names:
            continue
        want = schema.field(field.name).type
        if not field.type.equals(want) and field.type.equals(_plain(want)):
            data = data.set_column(i, pa.field(field.name, want), data.column(i).cast(want))
    return data
