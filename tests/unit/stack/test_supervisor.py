"""The supervisor's pieces that need no server: regions, backoff, events, health, requests."""

from __future__ import annotations

import json
import signal
import subprocess
import time
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


# --------------------------------------------------------------------------- hung server


def _supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers) -> tuple:
    """A Supervisor of a fake stack whose server (pid 4242) answers ``answers()``."""
    settings = _settings(tmp_path)
    run = settings.home / "run"
    run.mkdir(parents=True)
    (run / "stack.json").write_text(json.dumps({"triton_pid": 4242}))
    killed: list[int] = []
    monkeypatch.setattr(supervisor.launcher, "running_pid",
                        lambda s, name: 4242 if name == supervisor.launcher.TRITON else None)
    monkeypatch.setattr(supervisor, "kill_server",
                        lambda pid: killed.append(pid) or "killed (fake)")
    monkeypatch.setattr(supervisor, "alive", lambda pid: False)
    monkeypatch.setattr(supervisor, "LIVE_EVERY_S", 0.0)
    sup = supervisor.Supervisor(settings, probe_s=1.0)
    monkeypatch.setattr(sup, "_live", answers)
    monkeypatch.setattr(sup, "_after_server_death", lambda pid: None)
    sup.parts[supervisor.launcher.TRITON].last_pid = 4242
    return sup, killed


def _run_checks(sup, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sup._check_hung()
        time.sleep(0.02)


def test_a_server_silent_past_the_threshold_is_killed_once_and_recorded(tmp_path, monkeypatch):
    sup, killed = _supervisor(tmp_path, monkeypatch, lambda: False)
    # 3x the first window: a loaded 2-core box can stall a check by 0.1 s (0.3 s was 1.5x)
    sup.hang_s = 0.6
    _run_checks(sup, 0.2)
    assert killed == []  # silent, but not for long enough yet
    sup._write_health()
    assert "liveness" in service_state.read_health(sup.settings)["down"]["tritonserver"]
    _run_checks(sup, 1.0)
    assert killed == [4242]
    part = sup.parts[supervisor.launcher.TRITON]
    assert part.down_since is not None  # the process check restarts it (no second crash row)
    (crash,) = [e for e in service_state.recent_events(sup.settings) if e["event"] == "crash"]
    assert crash["pid"] == 4242 and crash["signal"] == "SIGKILL"
    assert crash["detail"].startswith("hung:") and "STAGELOG_HANG_MS" in crash["detail"]


def test_a_slow_but_answering_server_is_never_killed(tmp_path, monkeypatch):
    answers = iter([False, False, True] * 1000)  # two missed checks, then an answer, ...
    sup, killed = _supervisor(tmp_path, monkeypatch, lambda: next(answers))
    sup.hang_s = 0.05
    _run_checks(sup, 0.5)
    assert killed == []


def test_one_late_failure_after_a_long_stall_is_not_a_hang(tmp_path, monkeypatch):
    sup, killed = _supervisor(tmp_path, monkeypatch, lambda: False)
    sup.hang_s = 0.0  # even with no time limit: fewer than HANG_MIN_FAILURES checks
    for _ in range(supervisor.HANG_MIN_FAILURES - 1):
        sup._check_hung()
    assert killed == []
    sup._check_hung()
    assert killed == [4242]


def test_kill_server_kills_its_own_group_or_the_pid_alone():
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    child = subprocess.Popen(["sleep", "30"])  # in our group: only the pid may be killed
    try:
        assert "process group" in supervisor.kill_server(leader.pid)
        assert leader.wait(5) == -signal.SIGKILL
        assert "killed pid" in supervisor.kill_server(child.pid)
        assert child.wait(5) == -signal.SIGKILL
        assert "exited already" in supervisor.kill_server(leader.pid)
    finally:
        for proc in (leader, child):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
