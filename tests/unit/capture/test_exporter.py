"""Spool writer: segments are atomic, named per docs/architecture.md, readable Arrow that matches
the migration's columns."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow as pa
import pytest

from logging_backend.capture.exporter import SpoolExporter
from logging_backend.capture.stage import StageLog
from logging_backend.errors import SpoolError
from logging_backend.spool import layout
from logging_backend.spool.layout import host_name as safe_host
from logging_backend.spool.layout import read_table_segment as read_segment
from logging_backend.spool.schemas import SCHEMAS

NAME = re.compile(r"^\d{19}-[A-Za-z0-9_.]+-\d+-\d{8}\.arrow$")
V2_NAME = re.compile(r"^\d{19}-[A-Za-z0-9_.]+-\d+-\d{8}\.seg$")


def _run_stage(tmp_path, monkeypatch, params=None):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")
    monkeypatch.delenv("STAGELOG_LOGGING", raising=False)
    (tmp_path / "repo" / "features" / "1").mkdir(parents=True)
    cfg = {"parameters": {k: {"string_value": v} for k, v in (params or {}).items()}}
    args = {
        "model_name": "features",
        "model_version": "1",
        "model_repository": str(tmp_path / "repo" / "features"),
        "model_config": json.dumps(cfg),
    }
    log = StageLog.from_triton_args(args)
    raw = np.array([b"\x00\xffbinary", b'{"amount": 1}'], dtype=object)
    for i in range(5):
        with log.request(f"r{i}", rows=2) as rec:
            rec.input("PROCESSED", raw)
            rec.output("FEATURES", np.full((2, 3), i, dtype=np.float32))
            rec.predictions("mlp", np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]))
    log.close()
    return tmp_path / "home" / "spool", raw


def _read_all(spool):
    """Every table's rows in the spool, whatever the segment format."""
    out = {}
    for ref in layout.list_segments(spool):
        for table, data in layout.read_segment(ref.path).items():
            out.setdefault(table, []).append(data)
    return {t: pa.concat_tables(parts) for t, parts in out.items()}


def test_segments_are_named_atomic_and_readable_with_the_table_schema(tmp_path, monkeypatch):
    spool, raw = _run_stage(
        tmp_path, monkeypatch, {"logging_policy": "summary", "logging_reason": "r"}
    )
    names = os.listdir(spool)
    assert names and all(V2_NAME.match(n) for n in names), names  # v2, no .tmp left behind
    assert all(f"-{safe_host()}-{os.getpid()}-" in n for n in names)
    tables = _read_all(spool)
    assert sorted(tables) == [
        "logging_policy",
        "model_versions",
        "predictions",
        "stage_events",
        "stage_tensors",
    ]
    for name, table in tables.items():
        assert table.schema.equals(SCHEMAS[name]), name
    assert {name: t.num_rows for name, t in tables.items()} == {
        "stage_events": 5,
        "stage_tensors": 10,
        "predictions": 10,
        "model_versions": 1,
        "logging_policy": 1,
    }
    ev = tables["stage_events"]
    assert all(r > 0 for r in ev.column("rss_bytes").to_pylist())  # sampled by the flush thread
    assert ev.column("gpu_ms").null_count == 5  # NULL, not 0


def test_v1_format_writes_one_file_per_table_of_a_flush(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_SPOOL_FORMAT", "v1")
    spool, _ = _run_stage(tmp_path, monkeypatch)
    folders = sorted(p.name for p in spool.iterdir())
    assert folders == ["model_versions", "predictions", "stage_events", "stage_tensors"]
    for folder in spool.iterdir():
        assert all(NAME.match(n) for n in os.listdir(folder))
    assert _read_all(spool)["stage_events"].num_rows == 5


def test_raw_bytes_survive_the_segment_byte_for_byte(tmp_path, monkeypatch):
    spool, raw = _run_stage(tmp_path, monkeypatch)
    tensors = _read_all(spool)["stage_tensors"]
    processed = [r for r in tensors.to_pylist() if r["name"] == "PROCESSED"]
    assert len(processed) == 5
    assert all(r["values_str"] == list(raw) for r in processed)


def test_segment_names_sort_by_flush_time_and_never_repeat(tmp_path):
    ticks = iter([5, 5, 6])
    exp = SpoolExporter(tmp_path, clock_ns=lambda: next(ticks))
    table = pa.table({"a": [1]})
    paths = [exp.write_segment("t", table) for _ in range(3)]
    assert [p.name.split("-")[0] for p in paths] == ["0000000000000000005"] * 2 + [
        "0000000000000000006"
    ]
    assert len({p.name for p in paths}) == 3
    assert sorted(p.name for p in paths) == [p.name for p in paths]


def test_unwritable_spool_raises_spool_error_and_leaves_no_tmp(tmp_path):
    exp = SpoolExporter(tmp_path)
    (tmp_path / "t").write_text("a file where the table folder should be")
    with pytest.raises(SpoolError, match="cannot write spool segment"):
        exp.write_segment("t", pa.table({"a": [1]}))
    assert not list(tmp_path.rglob("*.tmp"))


def test_safe_host_replaces_odd_characters():
    assert safe_host("my-host.local/x") == "my_host.local_x"


def test_large_segments_are_compressed_small_ones_are_not(tmp_path):
    exp = SpoolExporter(tmp_path, compress_min_bytes=100_000)
    values = np.repeat(np.arange(50, dtype=np.float64), 1000)  # 400 KB, compressible
    small = exp.write_segment("t", pa.table({"v": values[:100]}))
    large = exp.write_segment("t", pa.table({"v": values}))
    assert small.stat().st_size > 800  # raw
    assert large.stat().st_size < values.nbytes / 10
    assert read_segment(large).column("v").to_numpy().tolist() == values.tolist()
    assert read_segment(small).column("v").to_numpy().tolist() == values[:100].tolist()
    plain = SpoolExporter(tmp_path / "plain", compression=None, compress_min_bytes=0)
    assert plain.write_segment("t", pa.table({"v": values})).stat().st_size > values.nbytes


def test_a_removed_table_folder_is_made_again(tmp_path):
    import shutil

    exp = SpoolExporter(tmp_path)
    exp.write_segment("t", pa.table({"a": [1]}))
    shutil.rmtree(tmp_path / "t")
    path = exp.write_segment("t", pa.table({"a": [2]}))
    assert read_segment(path).column("a").to_pylist() == [2]
