"""Every spool table's Arrow schema matches the columns and types its migrations create."""

import re

import pyarrow as pa
import pytest

from logging_backend import store
from logging_backend.spool.schemas import SCHEMAS


@pytest.fixture(scope="module")
def described(tmp_path_factory):
    client = store.connect(f"chdb://{tmp_path_factory.mktemp('schemas') / 'ch'}")
    store.migrate(client)
    out = {}
    for table in SCHEMAS:
        rows = client.query(f"DESCRIBE TABLE stagelog.{table}").result_rows
        out[table] = {name: ch_type for name, ch_type, *_ in rows}
    yield out
    store.close_all()


def _plain(ch_type: str) -> str:
    """``LowCardinality(String)`` -> ``String``, ``Nullable(T)`` -> ``T``, everywhere inside."""
    previous = None
    while previous != ch_type:
        previous = ch_type
        ch_type = re.sub(
            r"(LowCardinality|Nullable)\(([^()]*(?:\([^()]*\))?[^()]*)\)", r"\2", ch_type
        )
    return ch_type


def _clickhouse(arrow: pa.DataType) -> str:
    """The ClickHouse type an Arrow type of a spool segment is stored as."""
    if pa.types.is_dictionary(arrow):  # LowCardinality in the store (checked below)
        return _clickhouse(arrow.value_type)
    if pa.types.is_timestamp(arrow):
        return f"DateTime64(6, '{arrow.tz}')"
    if pa.types.is_map(arrow):
        return f"Map({_clickhouse(arrow.key_type)}, {_clickhouse(arrow.item_type)})"
    if pa.types.is_list(arrow):
        return f"Array({_clickhouse(arrow.value_type)})"
    if pa.types.is_string(arrow) or pa.types.is_binary(arrow):
        return "String"
    names = {
        pa.uint8(): "UInt8", pa.uint16(): "UInt16", pa.uint32(): "UInt32", pa.uint64(): "UInt64",
        pa.int32(): "Int32", pa.int64(): "Int64", pa.float32(): "Float32", pa.float64(): "Float64",
        pa.bool_(): "Bool",
    }
    return names[arrow]


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_spool_schema_matches_the_migrations(described, table):
    columns = described[table]
    for field in SCHEMAS[table]:
        assert field.name in columns, f"{table}.{field.name} is not created by any migration"
        assert _plain(columns[field.name]) == _clickhouse(field.type), (table, field.name)


def _dictionaries(arrow: pa.DataType) -> str:
    """The shape of ``arrow`` with D where a dictionary is, S where a plain string is."""
    if pa.types.is_dictionary(arrow):
        return "D"
    if pa.types.is_map(arrow):
        return f"M({_dictionaries(arrow.key_type)},{_dictionaries(arrow.item_type)})"
    return "S" if pa.types.is_string(arrow) else "-"


def _low_cardinality(ch_type: str) -> str:
    """The same shape of a ClickHouse type: D for LowCardinality(String), S for String."""
    ch_type = re.sub(r"^Nullable\((.*)\)$", r"\1", ch_type)
    if ch_type == "LowCardinality(String)":
        return "D"
    found = re.match(r"^Map\((LowCardinality\(String\)|[A-Za-z0-9]+), (.*)\)$", ch_type)
    if found:
        return f"M({_low_cardinality(found.group(1))},{_low_cardinality(found.group(2))})"
    return "S" if ch_type == "String" else "-"


@pytest.mark.parametrize("table", ["stage_events", "stage_tensors", "predictions"])
def test_the_busy_tables_send_every_low_cardinality_string_as_a_dictionary(described, table):
    columns = described[table]
    for field in SCHEMAS[table]:
        arrow, store_side = _dictionaries(field.type), _low_cardinality(columns[field.name])
        assert arrow == store_side, (table, field.name, field.type, columns[field.name])


def test_type_check_can_fail():
    assert _plain("Map(LowCardinality(String), Nullable(Float64))") == "Map(String, Float64)"
    assert _clickhouse(pa.list_(pa.float32())) != _plain("Array(Float64)")
