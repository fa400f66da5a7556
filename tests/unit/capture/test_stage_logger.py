"""StageLog: what one request's record carries, through the in-memory exporter and encode()."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import zlib

import numpy as np
import pytest

from logging_backend.capture import batch
from logging_backend.capture.batch import InMemoryExporter
from logging_backend.capture.encode import _class_names, encode
from logging_backend.capture.records import ModelLoad, Policy, PolicyNotice, Record, artifact_digest
from logging_backend.capture.stage import NullStageLog, StageLog
from logging_backend.errors import ConfigError


def _args(repo, model="mlp", version="1", params=None, instance="mlp_0"):
    cfg = {"name": model, "parameters": {k: {"string_value": v} for k, v in (params or {}).items()}}
    return {
        "model_name": model,
        "model_version": version,
        "model_repository": str(repo / model),
        "model_instance_name": instance,
        "model_config": json.dumps(cfg),
    }


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_TRITON_VERSION", "2.51.0")
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")
    version = tmp_path / "repo" / "mlp" / "1"
    version.mkdir(parents=True)
    (version / "weights.npz").write_bytes(b"\x00weights")
    (version / "model_card.json").write_text('{"training_data_sha256": "abc"}')
    (version / "__pycache__").mkdir()
    (version / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"junk")
    return tmp_path / "repo"


def _open(repo, **kw):
    exporter = InMemoryExporter()
    log = StageLog.from_triton_args(_args(repo, **kw), exporter=exporter)
    return log, exporter


def _tables(exporter):
    return {name: t.to_pylist() for name, t in encode(exporter.items).items()}


def test_request_record_has_identity_timing_tensors_and_predictions(repo):
    log, exporter = _open(repo)
    raw = np.array([b'{"event_id": "e1"}', b"\xff\xfe not utf-8", "é".encode()], dtype=object)
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]], dtype=np.float32)
    with log.request("req-1", rows=3) as rec:
        rec.input("RAW", raw)
        rec.input("FEATURES", feats)
        rec.state("card_state", {"mean_amount": np.array([1.5, 2.5, 3.5])})
        rec.predictions(model="mlp", probs=probs)
        rec.output("PROBS", probs)
        sum(range(20000))  # some CPU time
    log.close()
    assert exporter.is_shutdown
    tables = _tables(exporter)

    (ev,) = tables["stage_events"]
    sha, files = artifact_digest(repo / "mlp" / "1")
    assert ev["request_id"] == "req-1" and ev["rows"] == 3
    assert ev["stage"] == ev["model_name"] == "mlp" and ev["model_version"] == "1"
    assert ev["triton_version"] == "2.51.0" and ev["artifact_sha256"] == sha
    assert ev["status"] == "ok" and ev["error"] == ""
    assert ev["wall_ms"] > 0 and ev["cpu_ms"] > 0
    assert ev["gpu_ms"] is None and ev["gpu_mem_bytes"] is None and ev["device"] == "cpu"
    assert ev["rss_bytes"] == 0  # sampled by the spool exporter, not by encode's default
    assert ev["host"] == socket.gethostname() and ev["pid"] == os.getpid()
    assert ev["instance"] == "mlp_0" and ev["policy"] == "full"

    tensors = {(t["direction"], t["name"]): t for t in tables["stage_tensors"]}
    assert set(tensors) == {
        ("input", "RAW"),
        ("input", "FEATURES"),
        ("state", "card_state.mean_amount"),
        ("output", "PROBS"),
    }
    assert tensors["input", "RAW"]["values_str"] == list(raw)  # byte for byte
    assert tensors["input", "RAW"]["dtype"] == "BYTES" and tensors["input", "RAW"]["shape"] == [3]
    assert tensors["input", "FEATURES"]["values_f32"] == feats.ravel().tolist()
    assert tensors["input", "FEATURES"]["shape"] == [3, 2]
    assert tensors["input", "FEATURES"]["dtype"] == "float32"
    assert tensors["state", "card_state.mean_amount"]["values_f64"] == [1.5, 2.5, 3.5]

    preds = tables["predictions"]
    assert [p["row"] for p in preds] == [0, 1, 2]
    names = _class_names(3)
    assert [p["predicted_class"] for p in preds] == list(names)
    assert preds[1]["probs"] == pytest.approx([0.1, 0.8, 0.1])
    assert dict(preds[1]["class_probs"]) == pytest.approx(
        dict(zip(names, [0.1, 0.8, 0.1], strict=True))
    )
    assert all(p["decision"] == "" and p["model"] == "mlp" for p in preds)


def test_class_names_are_handed_in_by_the_stage():
    classes = ("legit", "card_fraud", "account_takeover")
    assert _class_names(3, classes) == classes
    assert _class_names(2, classes) == ("class_0", "class_1")  # another width: generic names
    assert _class_names(3) == ("class_0", "class_1", "class_2")


def test_model_load_writes_one_model_versions_row_with_card(repo):
    log, exporter = _open(repo)
    log.close()
    tables = _tables(exporter)
    (mv,) = tables["model_versions"]
    assert mv["model_name"] == "mlp" and mv["model_version"] == "1"
    assert mv["model_card"] == '{"training_data_sha256": "abc"}'
    assert mv["artifact_sha256"] == artifact_digest(repo / "mlp" / "1")[0]
    assert "logging_policy" not in tables  # full logging deviates from nothing


def test_artifact_digest_covers_files_not_pycache_and_changes_with_content(repo):
    version = repo / "mlp" / "1"
    sha, files = artifact_digest(version)
    assert set(files) == {"weights.npz", "model_card.json"}
    assert files["weights.npz"] == hashlib.sha256(b"\x00weights").hexdigest()
    (version / "__pycache__" / "other.pyc").write_bytes(b"more junk")
    assert artifact_digest(version)[0] == sha
    (version / "weights.npz").write_bytes(b"\x00weightz")
    assert artifact_digest(version)[0] != sha


def test_aggregate_decisions_are_recorded_per_row(repo):
    log, exporter = _open(repo, model="aggregate")
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]], dtype=np.float32)
    with log.request("r", rows=2) as rec:
        rec.predictions("aggregate", probs, decisions=np.array([b"approve", b"decline"], object))
    log.close()
    preds = _tables(exporter)["predictions"]
    assert [(p["model"], p["decision"]) for p in preds] == [
        ("aggregate", "approve"),
        ("aggregate", "decline"),
    ]


def test_exception_in_request_is_recorded_and_reraised(repo):
    log, exporter = _open(repo)
    with pytest.raises(ValueError, match="boom"):
        with log.request("bad", rows=1) as rec:
            rec.input("RAW", np.array([b"x"], dtype=object))
            raise ValueError("boom")
    with log.request("handled", rows=1) as rec:
        rec.fail("row 0: field 'amount': must be a finite number >= 0")
    log.close()
    events = {e["request_id"]: e for e in _tables(exporter)["stage_events"]}
    assert events["bad"]["status"] == "error"
    assert events["bad"]["error"] == "ValueError: boom"
    assert events["handled"]["status"] == "error"
    assert events["handled"]["error"] == "row 0: field 'amount': must be a finite number >= 0"


def test_triton_error_message_is_used(repo):
    class TritonError(Exception):
        def __init__(self, msg):
            super().__init__()
            self._msg = msg

        def message(self):
            return self._msg

    log, exporter = _open(repo)
    with pytest.raises(TritonError):
        with log.request("t", rows=1):
            raise TritonError("row 2: field 'event_id': missing")
    log.close()
    (ev,) = _tables(exporter)["stage_events"]
    assert ev["error"] == "TritonError: row 2: field 'event_id': missing"


def test_logged_tensor_is_a_copy_taken_at_call_time(repo):
    log, exporter = _open(repo)
    arr = np.zeros(4, dtype=np.float32)
    with log.request("r", rows=4) as rec:
        rec.input("X", arr)
        arr[:] = 7  # Triton reuses input memory after the response; the log must not see it
    log.close()
    (t,) = _tables(exporter)["stage_tensors"]
    assert t["values_f32"] == [0.0, 0.0, 0.0, 0.0] and t["values_f64"] == []


def test_a_buffered_record_is_one_object_the_garbage_collector_tracks(repo):
    """Records wait up to a flush period: their parts must not keep the stub's gc walking them."""
    log, exporter = _open(repo)
    probs = np.full((2, 3), 1 / 3, dtype=np.float32)
    with log.request("r", rows=2) as rec:
        rec.input("RAW", np.array([b"a", b"b"], dtype=object))
        rec.state("card_state", {"mean": np.zeros(2), "count": np.ones(2)})
        rec.output("PROBS", probs)
        rec.predictions(model="mlp", probs=probs)
    gc.collect()  # a pass stops tracking the tuples of strings and arrays,
    gc.collect()  # the next the tuples that hold only those
    parts = [rec.tensors, *rec.tensors, rec.preds, *rec.preds, rec.data]
    assert [gc.is_tracked(part) for part in parts] == [False] * len(parts)
    assert [name for _, name, _ in rec.tensors] == [
        "RAW", "card_state.mean", "card_state.count", "PROBS",
    ]  # fmt: skip
    log.close()
    tensors = {(t["direction"], t["name"]) for t in _tables(exporter)["stage_tensors"]}
    assert ("state", "card_state.mean") in tensors and ("state", "card_state.count") in tensors


# The arrows each stage of the pipeline records (model_repository/*/1/model.py), rows = 8.
_ROWS = 8
_PROBS = np.full((_ROWS, 3), 1 / 3, dtype=np.float32)
_STAGE_CALLS = {
    "preprocess": lambda rec: (
        rec.input("RAW", np.array([[b"{}"]] * _ROWS, dtype=object)),
        rec.output("REQUEST_ID", np.array([[b"r"]] * _ROWS, dtype=object)),
        rec.output("PROCESSED", np.array([[b"{}"]] * _ROWS, dtype=object)),
    ),
    "features": lambda rec: (
        rec.input("PROCESSED", np.array([[b"{}"]] * _ROWS, dtype=object)),
        rec.state("card_state", {k: np.zeros(_ROWS) for k in "abcdefg"}),
        rec.output("FEATURES", np.zeros((_ROWS, 45), dtype=np.float32)),
    ),
    "mlp": lambda rec: (
        rec.input("FEATURES", np.zeros((_ROWS, 45), dtype=np.float32)),
        rec.output("PROBS", _PROBS),
        rec.predictions(model="mlp", probs=_PROBS),
    ),
    "aggregate": lambda rec: (
        [rec.input(n, _PROBS) for n in ("MLP_PROBS", "FOREST_PROBS", "LOGREG_PROBS")],
        rec.output("PROBABILITIES", _PROBS),
        rec.output("DECISION", np.array([["approve"]] * _ROWS, dtype=object)),
        rec.predictions(model="aggregate", probs=_PROBS, decisions=["approve"] * _ROWS),
    ),
}


@pytest.mark.parametrize("stage", sorted(_STAGE_CALLS))
def test_a_buffered_record_of_each_stage_fits_the_room_the_gc_is_given(repo, monkeypatch, stage):
    """make_gc_room counts GC_OBJECTS_PER_ITEM objects per record: what a stage's record holds."""
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "600000")  # nothing leaves the buffer meanwhile
    log, _ = _open(repo)
    n = 200
    was_enabled = gc.isenabled()
    gc.disable()  # no collection resets the count while it is read
    try:
        gc.collect()
        before = gc.get_count()[0]
        for i in range(n):
            with log.request(f"r{i}", rows=_ROWS) as rec:
                _STAGE_CALLS[stage](rec)
        held = (gc.get_count()[0] - before) / n
    finally:
        if was_enabled:
            gc.enable()
    log.close()
    assert 1 <= held <= batch.GC_OBJECTS_PER_ITEM, held


def test_make_gc_room_raises_the_first_threshold_once_per_process(monkeypatch):
    saved = gc.get_threshold()
    monkeypatch.setattr(batch, "_gc_room", 0)
    try:
        gc.set_threshold(700, 10, 10)
        room = 1000 * batch.GC_OBJECTS_PER_ITEM
        assert batch.make_gc_room(1000) == 700 + room
        assert batch.make_gc_room(1000) == 700 + room  # a second stage log: no more
        assert batch.make_gc_room(10) == 700 + room  # a smaller one: the largest stands
        assert gc.get_threshold() == (700 + room, 10, 10)
        assert batch.make_gc_room(2000) == 700 + 2 * room  # from the host's own 700
        gc.set_threshold(0, 10, 10)  # the host turned collection off: left so
        assert batch.make_gc_room(5000) == 0 and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*saved)


@pytest.mark.parametrize(("setting", "raised"), [("on", True), ("off", False)])
def test_a_stage_log_gives_the_gc_room_unless_told_not_to(repo, monkeypatch, setting, raised):
    saved = gc.get_threshold()
    monkeypatch.setattr(batch, "_gc_room", 0)
    monkeypatch.setenv("STAGELOG_GC_ROOM", setting)
    try:
        gc.set_threshold(700, 10, 10)
        log, _ = _open(repo)
        log.close()
        room = batch.DEFAULT_MAX_BATCH * batch.GC_OBJECTS_PER_ITEM
        assert gc.get_threshold()[0] == (700 + room if raised else 700)
    finally:
        gc.set_threshold(*saved)


def test_a_call_after_the_with_block_is_dropped_with_a_warning_not_raised(repo, caplog):
    log, exporter = _open(repo)
    with log.request("r", rows=1) as rec:
        rec.input("X", np.zeros(1, dtype=np.float32))
    rec.input("LATE", np.zeros(1))  # the record is already buffered
    rec.output("LATE", np.zeros(1))
    rec.state("LATE", {"k": np.zeros(1)})
    rec.predictions(model="mlp", probs=np.ones((1, 3)))
    rec.table_rows("feedback", [])
    log.close()
    assert sum("after the request's with block" in r.getMessage() for r in caplog.records) == 5
    tables = _tables(exporter)
    assert [t["name"] for t in tables["stage_tensors"]] == ["X"]
    assert "predictions" not in tables


def test_bytes_request_id_is_decoded(repo):
    log, exporter = _open(repo)
    with log.request(b"abc-123", rows=1):
        pass
    log.close()
    assert _tables(exporter)["stage_events"][0]["request_id"] == "abc-123"


def test_gpu_fields_stay_null_on_cpu_and_take_the_hook_values(repo):
    class Pending:
        def resolve(self):
            return 1.25

    class Probe:
        device, device_id = "gpu", 0

        def memory_bytes(self):
            return 1 << 20

    log, exporter = _open(repo)
    with log.request("cpu", rows=1):
        pass
    log.set_gpu(Probe())
    with log.request("gpu", rows=1) as rec:
        rec.gpu_time(Pending())
    with log.request("direct", rows=1) as rec:
        rec.gpu_ms = 0.5
    log.close()
    from logging_backend.capture.exporter import _sample_gpu_memory

    items = exporter.items
    ev = {
        e["request_id"]: e
        for e in encode(items, 0, _sample_gpu_memory(items))["stage_events"].to_pylist()
    }
    assert ev["cpu"]["gpu_ms"] is None and ev["cpu"]["device"] == "cpu"
    assert ev["gpu"]["gpu_ms"] == 1.25 and ev["gpu"]["device"] == "gpu:0"
    assert ev["gpu"]["gpu_mem_bytes"] == 1 << 20
    assert ev["direct"]["gpu_ms"] == 0.5


def test_logging_off_gives_the_null_logger(repo, monkeypatch):
    monkeypatch.setenv("STAGELOG_LOGGING", "off")
    log = StageLog.from_triton_args(_args(repo))
    assert isinstance(log, NullStageLog) and not log.enabled
    with log.request("r", rows=1) as rec:
        rec.input("RAW", np.array([b"x"], dtype=object))
        rec.gpu_time(object())
        rec.fail("x")
    assert rec.status == "error"
    log.close()


def test_bad_settings_fail_with_the_variable_named(repo, monkeypatch):
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "soon")
    with pytest.raises(ConfigError, match="STAGELOG_FLUSH_MS"):
        StageLog.from_triton_args(_args(repo), exporter=InMemoryExporter())


# -- logging policy --------------------------------------------------------------------------


def test_summary_policy_keeps_statistics_not_values_and_says_why(repo):
    log, exporter = _open(
        repo, params={"logging_policy": "summary", "logging_reason": "features are bulky"}
    )
    with log.request("r", rows=4) as rec:
        rec.input("X", np.array([1.0, np.nan, 3.0, 5.0], dtype=np.float32))
        rec.input("RAW", np.array([b"ab", b"abcd"], dtype=object))
        rec.predictions("mlp", np.array([[0.5, 0.25, 0.25]] * 4))
    log.close()
    tables = _tables(exporter)
    t = {x["name"]: x for x in tables["stage_tensors"]}
    assert t["X"]["values_f64"] == t["X"]["values_f32"] == [] and t["X"]["policy"] == "summary"
    assert dict(t["X"]["summary"]) == {
        "count": 4.0,
        "nan_count": 1.0,
        "min": 1.0,
        "max": 5.0,
        "mean": 3.0,
    }
    assert t["RAW"]["values_str"] == []
    assert dict(t["RAW"]["summary"]) == {
        "count": 2.0,
        "nan_count": 0.0,
        "len_min": 2.0,
        "len_max": 4.0,
        "len_mean": 3.0,
    }
    assert len(tables["predictions"]) == 4  # predictions are never summarised
    (pol,) = tables["logging_policy"]
    assert pol["policy"] == "summary" and pol["reason"] == "features are bulky"
    assert pol["stage"] == "mlp" and pol["sample_rate"] == 1.0


def test_sampled_policy_keeps_tensors_for_a_deterministic_fraction_and_all_events(repo):
    log, exporter = _open(
        repo,
        params={"logging_policy": "sampled", "sample_rate": "0.25", "logging_reason": "volume"},
    )
    ids = [f"req-{i}" for i in range(400)]
    for rid in ids:
        with log.request(rid, rows=1) as rec:
            rec.input("X", np.array([1.0]))
            rec.predictions("mlp", np.array([[0.2, 0.3, 0.5]]))
    log.close()
    tables = _tables(exporter)
    assert len(tables["stage_events"]) == 400
    assert len(tables["predictions"]) == 400
    kept = {t["request_id"] for t in tables["stage_tensors"]}
    expected = {r for r in ids if zlib.crc32(r.encode()) < 0.25 * 2**32}
    assert kept == expected
    assert 60 < len(kept) < 140
    attrs = {e["request_id"]: dict(e["attributes"]) for e in tables["stage_events"]}
    assert all(attrs[r]["tensors"] == ("kept" if r in kept else "sampled_out") for r in ids)
    (pol,) = tables["logging_policy"]
    assert pol["policy"] == "sampled" and pol["sample_rate"] == 0.25 and pol["reason"] == "volume"


def test_sampling_is_the_same_decision_in_every_stage():
    a = Policy("sampled", 0.5, "x")
    b = Policy("sampled", 0.5, "y")
    ids = [f"id{i}" for i in range(200)]
    assert [a.keeps(i) for i in ids] == [b.keeps(i) for i in ids]
    assert 0 < sum(a.keeps(i) for i in ids) < 200


def test_off_policy_keeps_no_tensors_but_events_and_predictions(repo):
    log, exporter = _open(repo, params={"logging_policy": "off", "logging_reason": "PII"})
    with log.request("r", rows=1) as rec:
        rec.input("RAW", np.array([b"secret"], dtype=object))
        rec.state("s", {"a": np.array([1])})
        rec.predictions("mlp", np.array([[0.2, 0.3, 0.5]]))
    log.close()
    tables = _tables(exporter)
    assert "stage_tensors" not in tables
    assert len(tables["stage_events"]) == 1 and len(tables["predictions"]) == 1
    assert tables["logging_policy"][0]["reason"] == "PII"


def test_policy_without_reason_still_writes_a_row_saying_so(repo):
    log, exporter = _open(repo, params={"logging_policy": "summary"})
    log.close()
    (pol,) = _tables(exporter)["logging_policy"]
    assert "no reason given" in pol["reason"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"logging_policy": "some"}, "logging_policy='some' must be one of"),
        ({"logging_policy": "sampled"}, "needs sample_rate"),
        ({"logging_policy": "sampled", "sample_rate": "half"}, "is not a number"),
        ({"logging_policy": "sampled", "sample_rate": "1.5"}, "within"),
    ],
)
def test_bad_policy_parameters_fail_at_load(repo, params, message):
    with pytest.raises(ConfigError, match=message):
        StageLog.from_triton_args(_args(repo, params=params), exporter=InMemoryExporter())


def test_encode_rejects_unknown_items():
    from logging_backend.errors import SpoolError

    with pytest.raises(SpoolError, match="cannot encode"):
        encode([object()])


def test_item_types_are_what_the_logger_buffers(repo):
    log, exporter = _open(repo, params={"logging_policy": "off", "logging_reason": "x"})
    with log.request("r", rows=1):
        pass
    log.close()
    kinds = [type(i) for i in exporter.items]
    assert kinds == [ModelLoad, PolicyNotice, Record]


class FakeDeviceArray:
    """Stands in for a CuPy array: device copy on the request path, .get() in the flush thread."""

    def __init__(self, data):
        self.data = np.array(data)
        self.gets = 0

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.data.shape, "typestr": self.data.dtype.str, "version": 3}

    def copy(self):
        return FakeDeviceArray(self.data.copy())

    def get(self):
        self.gets += 1
        return self.data

    def __array__(self, *args, **kwargs):
        raise TypeError("implicit conversion to a NumPy array is not allowed")


def test_gpu_arrays_are_copied_on_device_and_fetched_by_the_flush_thread(repo):
    log, exporter = _open(repo)
    feats = FakeDeviceArray(np.ones((2, 3), dtype=np.float32))
    probs = FakeDeviceArray([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    with log.request("gpu", rows=2) as rec:
        rec.input("FEATURES", feats)
        rec.predictions("mlp", probs)
        feats.data[:] = 5  # the snapshot is a device copy taken at call time
    log.close()
    tables = _tables(exporter)
    (t,) = tables["stage_tensors"]
    assert t["values_f32"] == [1.0] * 6 and t["shape"] == [2, 3]
    assert [p["predicted_class"] for p in tables["predictions"]] == [
        _class_names(3)[2],
        _class_names(3)[0],
    ]


def test_a_log_not_closed_is_drained_at_interpreter_exit(tmp_path):
    import subprocess
    import sys

    version = tmp_path / "repo" / "m" / "1"
    version.mkdir(parents=True)
    script = f"""
import numpy as np
from logging_backend.capture.stage import StageLog
log = StageLog.from_triton_args({{"model_name": "m", "model_version": "1",
    "model_repository": {str(version.parent)!r}, "model_config": "{{}}"}})
with log.request("never-closed", rows=1) as rec:
    rec.input("X", np.array([1.0]))
"""
    env = dict(os.environ, STAGELOG_HOME=str(tmp_path / "home"), STAGELOG_FLUSH_MS="600000")
    env.pop("STAGELOG_LOGGING", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    from logging_backend.spool import layout

    segments = layout.list_segments(tmp_path / "home" / "spool")
    assert len(segments) == 1  # one flush: one v2 segment holding every table
    assert layout.read_segment(segments[0].path)["stage_events"].num_rows == 1


@pytest.mark.parametrize("size", [5, 1000])
def test_summary_statistics_agree_between_small_and_large_tensors(size):
    from logging_backend.capture.encode import _summary

    rng = np.random.default_rng(size)
    data = rng.normal(size=size)
    data[::4] = np.nan
    keys, vals = _summary(data.astype(np.float32))
    got = dict(zip(keys, vals, strict=True))
    present = data[~np.isnan(data)].astype(np.float32).astype(np.float64)
    assert got["count"] == size and got["nan_count"] == np.isnan(data).sum()
    assert got["min"] == pytest.approx(present.min())
    assert got["max"] == pytest.approx(present.max())
    assert got["mean"] == pytest.approx(present.mean())
    assert _summary(np.array([], dtype=np.float32)) == (["count"], [0.0])
    assert _summary(np.full(3, np.nan)) == (["count", "nan_count"], [3.0, 3.0])
    assert _summary(np.full(300, np.nan)) == (["count", "nan_count"], [300.0, 300.0])


def test_a_malformed_record_part_is_skipped_and_logged_not_the_batch(repo, caplog):
    class Broken:
        __cuda_array_interface__ = {}

        def copy(self):
            return self

        def get(self):
            raise RuntimeError("device lost")

    log, exporter = _open(repo, model="aggregate")
    with log.request("bad", rows=2) as rec:
        rec.input("GOOD", np.array([1.0, 2.0]))
        rec.input("BROKEN", Broken())
        rec.predictions("aggregate", np.ones((2, 3)) / 3, decisions=["approve"])  # 1 for 2 rows
        rec.gpu_ms = "not a number"
    with log.request("good", rows=1) as rec:
        rec.predictions("aggregate", np.array([[0.2, 0.3, 0.5]]), decisions=["review"])
    with log.request("neg", rows=-1):
        pass
    with log.request("np", rows=np.int64(3)):
        pass
    log.close()
    with caplog.at_level("WARNING", logger="stagelog.spool"):
        tables = _tables(exporter)
    assert {e["request_id"]: (e["gpu_ms"], e["rows"]) for e in tables["stage_events"]} == {
        "bad": (None, 2),
        "good": (None, 1),
        "neg": (None, 0),
        "np": (None, 3),
    }
    assert [t["name"] for t in tables["stage_tensors"]] == ["GOOD"]
    assert [(p["request_id"], p["decision"]) for p in tables["predictions"]] == [("good", "review")]
    assert "tensor 'BROKEN' of bad not logged" in caplog.text
    assert "1 decisions for 2 prediction rows" in caplog.text
