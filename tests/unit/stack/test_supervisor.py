"""The supervisor's pieces that need no server: regions, backoff, events, health, requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logging_backend import config
from logging_backend.errors import LauncherError
from logging_backend.spool import layout
from logging_backend.stack import service_state, stages, supervisor


def _settings(tmp_path: Path) -> config.Settings:
    return config.load(home=tmp_path / "home")


def test_only_dead_stub_regions_of_ours_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "SHM_DIR", tmp_path)
    dead = "triton_python_backend_shm_region_dead"
    live = "triton_python_backend_shm_region_live"
    other = "someone_elses_region"
    for name in (dead, live, other):
        (tmp_path / name).write_bytes(b"x")
    live_stub = stages.Stub(1, "forest", "1", "forest_0_0", live)
    removed = stages.remove_regions({dead, live, other, "../etc/passwd"}, [live_stub])
    assert removed == [dead]
    assert (tmp_path / live).exists() and (tmp_path / other).exists()


def test_backoff_doubles_and_is_capped():
    part = supervisor.Part("x")
    delays = []
    for attempt in range(1, 10):
        part.attempts = attempt
        delays.append(part.backoff())
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == supervisor.MAX_BACKOFF_S


def test_events_go_to_the_spool_and_the_journal(tmp_path):
    settings = _settings(tmp_path)
    log = supervisor.EventLog(settings)
    log.record("model", "unhealthy", model="forest", pid=42, sig="SIGKILL", detail="boom")
    (ref,) = layout.list_segments(settings.spool_dir)
    (row,) = layout.read_segment(ref.path)["service_events"].to_pylist()
    assert row["model"] == "forest" and row["pid"] == 42 and row["signal"] == "SIGKILL"
    assert row["exit_code"] is None
    (entry,) = service_state.recent_events(settings)
    assert entry["event"] == "unhealthy" and entry["event_id"] == row["event_id"]


def test_health_file_round_trips_and_signal_names(tmp_path):
    settings = _settings(tmp_path)
    assert service_state.read_health(settings) is None
    path = service_state.health_file(settings)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"down": {"forest": "not healthy"}}))
    assert service_state.read_health(settings)["down"] == {"forest": "not healthy"}
    assert supervisor.signal_name(9) == "SIGKILL" and supervisor.signal_name(11) == "SIGSEGV"


def test_restart_without_a_stack_is_a_plain_error(tmp_path):
    with pytest.raises(LauncherError, match="no stack"):
        supervisor.request_restart(_settings(tmp_path), "forest")
