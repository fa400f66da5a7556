"""The demo's wait for its requests to be logged: every segment spooled so far, v2 included."""

from __future__ import annotations

import json
import threading
import time

import pyarrow as pa

from clients import demo
from logging_backend import config
from logging_backend.spool import layout


def test_wait_until_logged_waits_for_the_stages_v2_segments(tmp_path, monkeypatch) -> None:
    settings = config.load(home=tmp_path / "home", flush_ms=10)
    # What a stage writes since issue 11: one file per flush at the spool's root.
    (segment,) = layout.write_segment(
        settings.spool_dir, {"stage_events": pa.table({"request_id": ["r1"]})}, fmt="v2"
    )
    asked: list[bool] = []

    def execute(_settings, _sql, _params, _fmt) -> bytes:
        asked.append(segment.exists())
        return json.dumps({"data": [[1]]}).encode()

    monkeypatch.setattr(demo.query, "execute", execute)
    shipped = threading.Timer(0.5, segment.unlink)  # the collector, shipping it
    shipped.start()
    started = time.monotonic()
    try:
        demo.wait_until_logged(settings, ["r1"])
    finally:
        shipped.cancel()
    assert time.monotonic() - started >= 0.5
    assert asked and not any(asked)  # the store is asked only once the segment is shipped
