"""A record the flush thread cannot encode is stored with its error; it takes no other with it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from logging_backend.capture.stage import StageLog
from logging_backend.spool import layout


def _log(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "5000")  # one flush: at close
    monkeypatch.delenv("STAGELOG_LOGGING", raising=False)
    (tmp_path / "repo" / "features" / "1").mkdir(parents=True)
    args = {
        "model_name": "features",
        "model_version": "1",
        "model_repository": str(tmp_path / "repo" / "features"),
        "model_config": json.dumps({"parameters": {}}),
    }
    return StageLog.from_triton_args(args)


def _rows(spool, table):
    """Every row of ``table`` in the spool, whatever the segment format (v1 or v2)."""
    parts = [
        data
        for ref in layout.list_segments(spool)
        for name, data in layout.read_segment(ref.path).items()
        if name == table
    ]
    return pa.concat_tables(parts)


def test_a_record_with_a_lone_surrogate_is_stored_with_its_error_and_others_intact(
    tmp_path, monkeypatch
):
    log = _log(tmp_path, monkeypatch)
    for i in range(20):
        with log.request(f"r{i}", rows=1) as rec:
            rec.output("FEATURES", np.full((1, 3), i, dtype=np.float32))
            if i == 7:  # what the features stage held for a card_id of "\ud800" before the fix
                rec.state("card_state", {"card_id": np.array(["c\ud800"], dtype=object)})
    with log.request("bad-\udc00-id", rows=1) as rec:
        rec.output("FEATURES", np.zeros((1, 3), dtype=np.float32))
    log.close()
    spool = tmp_path / "home" / "spool"
    events = _rows(spool, "stage_events").to_pylist()
    assert len(events) == 21  # nobody else's record went with the bad ones
    by_id = {e["request_id"]: e for e in events}
    assert by_id["r6"]["status"] == "ok"
    assert "bad-\\udc00-id" in by_id  # stored, its invalid text escaped
    tensors = _rows(spool, "stage_tensors").to_pylist()
    # Every record's storable tensors are there; the one no encoder takes is not (the
    # encoder drops that tensor, or the exporter's per-record fallback stores r7 with its
    # error): nothing of another request is lost.
    assert {t["request_id"] for t in tensors if t["name"] == "FEATURES"} >= {
        f"r{i}" for i in range(20) if i != 7
    }
    assert not [t for t in tensors if t["request_id"] == "r7" and t["name"].startswith("card")]
    assert by_id["r7"]["status"] == "ok" or "record not storable" in by_id["r7"]["error"]
