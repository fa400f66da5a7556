"""store.insert_arrow: into chDB through a private Arrow stream file; dictionaries stay LC.

Against the real engine, in a fresh interpreter each (chDB allows one data path per process).
"""

from __future__ import annotations

import json

import pytest

from logging_backend import store
from logging_backend.errors import StoreError
from tests.unit.store.test_store import run_py

_INSERT = """
    import json, os, stat, tempfile, time
    import pyarrow as pa
    from logging_backend import store
    from logging_backend.store import client as sc
    from logging_backend.spool.schemas import LC_STR
    c = store.connect("chdb://{path}")
    store.migrate(c)
    now = time.time_ns() // 1000

    def lc(values, dictionary):
        return pa.DictionaryArray.from_arrays(pa.array(values, pa.int32()), pa.array(dictionary))

    def part(ids, classes):
        n = len(ids)
        keys = lc([0, 1] * n, classes)
        return pa.table({{
            "ts": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            "request_id": ids,
            "row": pa.array(range(n), pa.uint32()),
            "stage": lc([0] * n, ["mlp"]),
            "model": lc([0] * n, ["mlp"]),
            "model_version": lc([0] * n, ["2"]),
            "class_probs": pa.MapArray.from_arrays(
                pa.array([2 * i for i in range(n + 1)], pa.int32()), keys,
                pa.array([0.25, 0.75] * n, pa.float32())),
            "probs": pa.array([[0.25, 0.75]] * n, pa.list_(pa.float32())),
            "predicted_class": lc([1] * n, classes),
            "decision": lc([0] * n, ["it's \\\\ quoted"]),
        }})

    # two segments' pieces, each with its own dictionaries (in another order)
    data = pa.concat_tables([part(["a", "b"], ["legit", "fraud"]), part(["c"], ["fraud", "legit"])])
    token = "tok'en\\\\1"
    for _ in range(2):  # the same token twice: the rows once
        store.insert_arrow(c, "stagelog.predictions", data,
                           {{"async_insert": 0, "insert_deduplicate": 1,
                            "insert_deduplication_token": token}})
    rows = c.query("SELECT request_id, row, toString(class_probs), predicted_class, decision,"
                   " toTypeName(predicted_class) FROM stagelog.predictions"
                   " ORDER BY request_id").result_rows
    folder = sc._insert_dir
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    left = os.listdir(folder)
    try:
        store.insert_arrow(c, "stagelog.predictions", data.drop_columns(["row"]).append_column(
            "row", pa.array(["x", "y", "z"])), {{"insert_deduplication_token": "bad"}})
        refused = None
    except Exception as exc:
        refused = type(exc).__name__
    print(json.dumps({{"rows": rows, "mode": oct(mode), "left": left,
                      "left_after_refusal": os.listdir(folder), "refused": refused}}))
"""


def test_a_chdb_insert_goes_through_a_private_file_and_keeps_every_value(tmp_path):
    printed = run_py(_INSERT.format(path=tmp_path / "ch"), tmp_path)
    out = json.loads(printed.strip().splitlines()[-1])
    lc, quoted = "LowCardinality(String)", "it's \\ quoted"
    assert out["rows"] == [
        ["a", 0, "{'legit':0.25,'fraud':0.75}", "fraud", quoted, lc],
        ["b", 1, "{'legit':0.25,'fraud':0.75}", "fraud", quoted, lc],
        ["c", 0, "{'fraud':0.25,'legit':0.75}", "legit", quoted, lc],
    ]
    assert out["mode"] == "0o700"  # only the collector's user enters the folder of the files
    assert out["left"] == [] and out["left_after_refusal"] == []  # each file removed at once
    assert out["refused"] is not None  # a refused insert raises (the shipper bisects)


def test_a_table_or_setting_name_that_is_not_one_never_reaches_the_store():
    import pyarrow as pa

    class Never:
        def insert_arrow(self, *args, **kwargs):
            raise AssertionError("sent")

    with pytest.raises(StoreError, match="not a table name"):
        store.insert_arrow(Never(), "stagelog.predictions; DROP TABLE x", pa.table({"x": [1]}))
    # the chDB path writes the SETTINGS clause itself (a server client gets them as parameters)
    with pytest.raises(StoreError, match="not a ClickHouse setting name"):
        store.client._settings_clause({"insert_deduplicate = 0, readonly": 1})
    assert store.client._settings_clause({"a": True, "b": 2, "c": "it's"}) == (
        "a = 1, b = 2, c = 'it\\'s'"
    )


def test_a_server_client_gets_client_insert_arrow_with_one_dictionary_per_column():
    import pyarrow as pa

    sent = []

    class Server:
        def insert_arrow(self, table, data, settings=None):
            sent.append((table, data, settings))

    def lc(values, dictionary):
        return pa.DictionaryArray.from_arrays(pa.array(values, pa.int32()), pa.array(dictionary))

    data = pa.concat_tables([pa.table({"s": lc([0], ["a"])}), pa.table({"s": lc([0], ["b"])})])
    store.insert_arrow(Server(), "stagelog.stage_events", data, {"async_insert": 0})
    ((table, got, settings),) = sent
    assert table == "stagelog.stage_events" and settings == {"async_insert": 0}
    assert got.column("s").to_pylist() == ["a", "b"]
    chunks = got.column("s").chunks
    assert all(c.dictionary.equals(chunks[0].dictionary) for c in chunks)  # Arrow file format
