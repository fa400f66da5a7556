"""The columnar flush encoder: dtypes kept, arrows stored once, summaries, predictions."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest

from logging_backend.capture import encode
from logging_backend.capture.records import ModelIdentity, Policy
from logging_backend.capture.stage import StageLogger

CLASSES = ("legit", "card_fraud", "account_takeover")


class _Buffer:
    def __init__(self) -> None:
        self.items: list = []

    def emit(self, item) -> None:
        self.items.append(item)


def _logger(stage="features", policy=None, sources=None, outputs=()):
    log = StageLogger(ModelIdentity(stage, "3", "2.51", "ab" * 32, f"{stage}_0"), None,
                      policy or Policy())  # fmt: skip
    log.processor = _Buffer()
    log.arrow_sources = dict(sources or {})
    log.arrow_outputs = frozenset(outputs)
    return log


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _by_name(tables) -> dict[str, dict]:
    return {(r["direction"], r["name"]): r for r in _rows(tables["stage_tensors"])}


def test_float32_stays_float32_and_other_numbers_go_to_float64():
    log = _logger()
    feats = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)
    with log.request("r1", rows=2) as rec:
        rec.output("FEATURES", feats)
        rec.state("card_state", {"count": np.array([3, 4]), "mean": np.array([1.5, 2.5])})
        rec.input("RAW", np.array([[b'{"a": 1}'], ["caf\u00e9"]], dtype=object))
    tables = encode.encode(log.processor.items, class_names=CLASSES)
    assert tables["stage_tensors"].schema == encode.STAGE_TENSORS
    t = _by_name(tables)
    f = t["output", "FEATURES"]
    assert f["dtype"] == "float32" and f["shape"] == [2, 2] and f["values_f64"] == []
    assert np.array(f["values_f32"], dtype=np.float32).tobytes() == feats.tobytes()
    assert t["state", "card_state.count"]["values_f64"] == [3.0, 4.0]
    assert t["state", "card_state.count"]["dtype"] == "int64"
    assert t["state", "card_state.mean"]["values_f64"] == [1.5, 2.5]
    raw = t["input", "RAW"]
    assert raw["dtype"] == "BYTES" and raw["values_str"] == [b'{"a": 1}', "caf\u00e9".encode()]
    assert all(r["digest"] == "" and r["source_stage"] == "" for r in t.values())


def test_an_arrow_is_stored_once_with_matching_digests_at_both_ends():
    feats = np.arange(12, dtype=np.float32).reshape(3, 4)
    processed = np.array([[b"row-0"], [b""], [b"row-2 \xff"]], dtype=object)
    producer = _logger("features", outputs={"FEATURES"})
    consumer = _logger("mlp", sources={"FEATURES": ("features", "FEATURES"),
                                       "PROCESSED": ("preprocess", "PROCESSED")})  # fmt: skip
    with producer.request("r", rows=3) as rec:
        rec.output("FEATURES", feats)
    with consumer.request("r", rows=3) as rec:
        rec.input("FEATURES", feats.copy())
        rec.input("PROCESSED", processed)
        rec.input("OTHER", feats)  # not an arrow: stored in full, no digest
    p = _by_name(encode.encode(producer.processor.items))["output", "FEATURES"]
    c = _by_name(encode.encode(consumer.processor.items))
    ref = c["input", "FEATURES"]
    assert ref["values_f32"] == [] and ref["values_f64"] == [] and ref["values_str"] == []
    assert (ref["source_stage"], ref["source_name"]) == ("features", "FEATURES")
    assert ref["digest"] == p["digest"] == encode.digest_bytes(feats)
    assert ref["shape"] == [3, 4] and ref["dtype"] == "float32"
    assert c["input", "PROCESSED"]["digest"] == encode.digest_strings(list(processed.ravel()))
    assert c["input", "OTHER"]["digest"] == "" and len(c["input", "OTHER"]["values_f32"]) == 12


def test_a_changed_arrow_gets_a_different_digest():
    feats = np.ones((2, 3), dtype=np.float32)
    changed = feats.copy()
    changed[1, 2] = np.nextafter(np.float32(1), np.float32(2))
    assert encode.digest_bytes(feats) != encode.digest_bytes(changed)
    assert encode.digest_strings([b"ab", b"c"]) != encode.digest_strings([b"a", b"bc"])


def test_digests_of_many_tensors_in_one_flush_are_each_their_own():
    log = _logger("features", outputs={"FEATURES"})
    arrays = [np.full((i + 1, 2), i, dtype=np.float32) for i in range(5)]
    for i, arr in enumerate(arrays):
        with log.request(f"r{i}", rows=i + 1) as rec:
            rec.output("FEATURES", arr)
    rows = _rows(encode.encode(log.processor.items)["stage_tensors"])
    got = {r["request_id"]: r["digest"] for r in rows}
    assert got == {f"r{i}": encode.digest_bytes(a) for i, a in enumerate(arrays)}
    by_rid = {r["request_id"]: r for r in rows}
    assert by_rid["r3"]["values_f32"] == [3.0] * 8 and by_rid["r3"]["shape"] == [4, 2]


def test_summary_policy_statistics_per_tensor_vectorized():
    log = _logger(policy=Policy(mode="summary", reason="x"))
    data = np.array([1.0, np.nan, 3.0, 5.0], dtype=np.float32)
    with log.request("a", rows=1) as rec:
        rec.input("X", data)
        rec.input("EMPTY", np.array([], dtype=np.float32))
        rec.input("NAN", np.full(3, np.nan))
        rec.input("S", np.array([b"ab", b"abcd"], dtype=object))
    with log.request("b", rows=1) as rec:
        rec.input("X", np.array([2.0], dtype=np.float32))
    rows = _rows(encode.encode(log.processor.items)["stage_tensors"])
    got = {(r["request_id"], r["name"]): dict(r["summary"]) for r in rows}
    assert got["a", "X"] == {"count": 4, "nan_count": 1, "min": 1, "max": 5, "mean": 3}
    assert got["b", "X"] == {"count": 1, "nan_count": 0, "min": 2, "max": 2, "mean": 2}
    assert got["a", "EMPTY"] == {"count": 0}
    assert got["a", "NAN"] == {"count": 3, "nan_count": 3}
    assert got["a", "S"] == {"count": 2, "nan_count": 0, "len_min": 2, "len_max": 4,
                             "len_mean": 3}  # fmt: skip
    assert all(r["values_f32"] == [] and r["values_f64"] == [] for r in rows)


def test_predictions_rows_per_event_row_with_class_names_and_decisions():
    log = _logger("aggregate")
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    with log.request("r1", rows=2) as rec:
        rec.predictions("aggregate", probs, decisions=np.array([b"approve", "decline"], object))
    with log.request("r2", rows=1) as rec:
        rec.predictions("aggregate", probs[:1])
    rows = _rows(encode.encode(log.processor.items, class_names=CLASSES)["predictions"])
    assert [(r["request_id"], r["row"], r["predicted_class"], r["decision"]) for r in rows] == [
        ("r1", 0, "legit", "approve"),
        ("r1", 1, "account_takeover", "decline"),
        ("r2", 0, "legit", ""),
    ]
    assert dict(rows[1]["class_probs"]) == pytest.approx(
        dict(zip(CLASSES, probs[1].tolist(), strict=True))
    )
    assert rows[0]["probs"] == pytest.approx(probs[0].tolist())
    assert rows[0]["stage"] == "aggregate" and rows[0]["model_version"] == "3"


def test_a_bad_prediction_is_skipped_and_logged_not_the_flush(caplog):
    log = _logger("aggregate")
    with log.request("bad", rows=2) as rec:
        rec.predictions("aggregate", np.ones((2, 3)) / 3, decisions=["approve"])
    with log.request("good", rows=1) as rec:
        rec.predictions("aggregate", np.array([[0.2, 0.3, 0.5]]), decisions=["review"])
    with caplog.at_level(logging.ERROR):
        tables = encode.encode(log.processor.items, class_names=CLASSES)
    assert [r["request_id"] for r in _rows(tables["predictions"])] == ["good"]
    assert "predictions of bad not logged" in caplog.text
    assert len(tables["stage_events"]) == 2


def test_records_of_two_loggers_in_one_flush_keep_their_identity():
    a, b = _logger("mlp"), _logger("forest", policy=Policy(mode="sampled", sample_rate=1.0))
    with a.request("r", rows=1) as rec:
        rec.output("PROBS", np.array([[0.5, 0.25, 0.25]], dtype=np.float32))
    with b.request("r", rows=1) as rec:
        rec.output("PROBS", np.array([[0.1, 0.1, 0.8]], dtype=np.float32))
    rec.gpu_ms = "not a number"
    tables = encode.encode([*a.processor.items, *b.processor.items])
    events = _rows(tables["stage_events"])
    assert [(e["stage"], e["policy"], e["attributes"]) for e in events] == [
        ("mlp", "full", []),
        ("forest", "sampled", [("tensors", "kept")]),
    ]
    assert events[1]["gpu_ms"] is None
    tensors = {r["stage"]: r["values_f32"] for r in _rows(tables["stage_tensors"])}
    assert tensors == {"mlp": [0.5, 0.25, 0.25], "forest": pytest.approx([0.1, 0.1, 0.8])}


def test_gpu_timings_are_resolved_in_the_flush_and_failures_stay_null():
    class Pending:
        def __init__(self, ms):
            self.ms = ms

        def resolve(self):
            if self.ms is None:
                raise RuntimeError("device lost")
            return self.ms

    log = _logger("mlp")
    for ms in (2.5, None):
        with log.request("r", rows=1) as rec:
            rec.gpu_time(Pending(ms))
    events = _rows(encode.encode(log.processor.items)["stage_events"])
    assert [e["gpu_ms"] for e in events] == [2.5, None]


def test_device_arrays_are_fetched_in_the_flush():
    from tests.unit.capture.test_stage_logger import FakeDeviceArray

    log = _logger("mlp", outputs={"PROBS"})
    probs = FakeDeviceArray(np.array([[0.6, 0.3, 0.1]], dtype=np.float32))
    with log.request("gpu", rows=1) as rec:
        rec.output("PROBS", probs)
        rec.predictions("mlp", probs)
        probs.data[:] = 0  # the record holds a device copy taken at call time
    tables = encode.encode(log.processor.items, class_names=CLASSES)
    (t,) = _rows(tables["stage_tensors"])
    assert t["values_f32"] == pytest.approx([0.6, 0.3, 0.1])
    assert t["digest"] == encode.digest_bytes(np.array([[0.6, 0.3, 0.1]], dtype=np.float32))
    assert _rows(tables["predictions"])[0]["predicted_class"] == "legit"


def _general_only(monkeypatch):
    monkeypatch.setattr(encode._Flush, "_uniform_groups", lambda self: None)


@pytest.mark.parametrize("stage", ["preprocess", "features", "mlp", "aggregate"])
def test_the_usual_flush_takes_the_fast_path_and_encodes_what_the_general_path_does(
    stage, monkeypatch
):
    from bench.flush_cost import records

    batch = records(stage, 40, 8, arrows=True)
    flush = encode._Flush([r for r in batch if isinstance(r, encode.Record)], 0, {})
    assert flush._uniform_groups() is not None  # the pipeline's records are the usual case
    fast = encode.encode(batch, class_names=CLASSES)
    _general_only(monkeypatch)
    general = encode.encode(batch, class_names=CLASSES)
    assert fast.keys() == general.keys()
    for table in fast:
        assert fast[table].equals(general[table]), table


def test_records_of_different_layouts_fall_back_to_the_general_path_with_the_same_rows(
    monkeypatch,
):
    log = _logger("features", outputs={"FEATURES"})
    for i in range(6):
        with log.request(f"r{i}", rows=2) as rec:
            rec.input("PROCESSED", np.array([[b"a"], [b"b"]], dtype=object))
            if i == 2:
                rec.fail("bad row")  # a failed request: fewer tensors
                continue
            rec.state("card_state", {"n": np.arange(2) + i, "seen": np.ones(2, dtype=bool)})
            dtype = np.float64 if i == 4 else np.float32  # one dtype apart: its own group
            rec.output("FEATURES", np.full((2, 3), i, dtype=dtype))
            if i == 5:
                rec.output("FEATURES", np.zeros((2, 3), dtype=np.float32))  # a name twice
    flush = encode._Flush(log.processor.items, 0, {})
    assert flush._uniform_groups() is None
    got = encode.encode(log.processor.items)
    _general_only(monkeypatch)
    assert got["stage_tensors"].equals(encode.encode(log.processor.items)["stage_tensors"])
    rows = got["stage_tensors"].to_pylist()
    feats = [r for r in rows if r["name"] == "FEATURES"]
    assert sorted(r["request_id"] for r in feats) == ["r0", "r1", "r3", "r4", "r5", "r5"]
    assert [r["values_f64"] for r in feats if r["request_id"] == "r4"] == [[4.0] * 6]


def test_state_mappings_and_numeric_digests_on_the_fast_path():
    log = _logger("mlp", sources={"FEATURES": ("features", "FEATURES")}, outputs={"PROBS"})
    arrays = []
    for i in range(5):
        with log.request(f"r{i}", rows=2) as rec:
            feats = np.arange(6, dtype=np.float32).reshape(2, 3) + i
            arrays.append(feats)
            rec.input("FEATURES", feats)
            rec.state("seen", {"count": np.array([i, i + 1]), "ok": np.array([True, False])})
            rec.output("PROBS", np.full((2, 3), 1 / 3, dtype=np.float32))
    flush = encode._Flush(log.processor.items, 0, {})
    assert flush._uniform_groups() is not None
    rows = encode.encode(log.processor.items)["stage_tensors"].to_pylist()
    inputs = [r for r in rows if r["direction"] == "input"]
    assert [r["digest"] for r in inputs] == [encode.digest_bytes(a) for a in arrays]
    assert all(r["values_f32"] == [] and r["source_stage"] == "features" for r in inputs)
    counts = [r for r in rows if r["name"] == "seen.count"]
    assert [r["values_f64"] for r in counts] == [[float(i), float(i + 1)] for i in range(5)]
    assert [r["shape"] for r in counts] == [[2]] * 5


def _dictionary_columns(table: pa.Table) -> set[str]:
    out = set()
    for field in table.schema:
        typ = field.type
        if pa.types.is_dictionary(typ) or (
            pa.types.is_map(typ) and pa.types.is_dictionary(typ.key_type)
        ):
            out.add(field.name)
    return out


def test_low_cardinality_columns_are_dictionaries_each_value_once():
    """Two model instances in one flush, a failed request, a sampled logger's attributes."""
    a, b = _logger("mlp"), _logger("mlp")
    b.identity = ModelIdentity("mlp", "4", "2.51", "cd" * 32, "mlp_1")
    b.processor = a.processor
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    for i, log in enumerate((a, b, a)):
        with log.request(f"r{i}", rows=2) as rec:
            rec.output("PROBS", probs)
            rec.predictions("mlp", probs)
            if i == 2:
                rec.fail("bad row")
    tables = encode.encode(a.processor.items, class_names=CLASSES)
    assert _dictionary_columns(tables["stage_events"]) == {
        "stage", "model_name", "model_version", "triton_version", "artifact_sha256", "status",
        "device", "host", "instance", "policy", "attributes",
    }
    assert {"stage", "model_version", "direction", "name", "dtype", "policy", "source_stage",
            "source_name", "summary"} == _dictionary_columns(tables["stage_tensors"])
    assert {"stage", "model", "model_version", "class_probs", "predicted_class",
            "decision"} == _dictionary_columns(tables["predictions"])
    for name, table in tables.items():
        assert table.schema == encode.SCHEMAS[name], name
        for column in _dictionary_columns(table):
            for chunk in table.column(column).chunks:
                d = chunk.dictionary if hasattr(chunk, "dictionary") else chunk.keys.dictionary
                assert len(set(d.to_pylist())) == len(d), (name, column)  # each value once
    events = _rows(tables["stage_events"])
    assert [(e["model_version"], e["instance"], e["status"]) for e in events] == [
        ("3", "mlp_0", "ok"), ("4", "mlp_1", "ok"), ("3", "mlp_0", "error"),
    ]
    preds = _rows(tables["predictions"])
    assert [p["predicted_class"] for p in preds] == ["legit", "account_takeover"] * 3
    assert preds[0]["class_probs"] == list(zip(CLASSES, probs[0].tolist(), strict=True))
