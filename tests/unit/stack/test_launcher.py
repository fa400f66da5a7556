"""Launcher behaviour without a real server: a fake tritonserver and a fake collector."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from logging_backend import config
from logging_backend.errors import ConfigError, LauncherError
from logging_backend.stack import cli, launcher

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

# A stand-in for tritonserver: prints the option table for the version probe, answers gRPC
# readiness (server, and model `pipeline`) on --grpc-port, and can be told to fail or hang
# through FAKE_TRITON_MODE.
FAKE_TRITON = f"""#!{sys.executable}
import os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
if args.get("allow-grpc") == "false":
    print("| server_version                   | 9.8.7 |")
    sys.exit(1)
print("fake tritonserver starting", flush=True)
home = os.environ["STAGELOG_HOME"]
open(os.path.join(home, "triton-env.txt"), "w").write(repr(dict(os.environ)) + "\\n" + repr(args))
mode = os.environ.get("FAKE_TRITON_MODE", "ok")
if mode == "need-collector" and not os.path.exists(os.path.join(home, "run", "collector.json")):
    print("collector.json missing at server start", flush=True)
    sys.exit(7)
if mode == "crash":
    print("E0000 model 'pipeline' failed to load: boom", flush=True)
    sys.exit(3)
if mode == "hang":
    print("still loading pipeline", flush=True)
    time.sleep(600)

from concurrent import futures
import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

class Service(service_pb2_grpc.GRPCInferenceServiceServicer):
    def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)
    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == "pipeline")

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Service(), server)
server.add_insecure_port("127.0.0.1:" + args["grpc-port"])
server.start()
server.wait_for_termination()
"""

# A stand-in collector: writes collector.json when ready; on SIGTERM records whether the
# server was still alive (it must not be: `down` stops the server first).
FAKE_COLLECTOR = """
import json, os, signal, sys, time
import psutil
home = os.environ["STAGELOG_HOME"]
def on_term(*_):
    pid = int(open(os.path.join(home, "pids", "tritonserver.pid")).read()) \\
        if os.path.exists(os.path.join(home, "pids", "tritonserver.pid")) else None
    alive = pid is not None and psutil.pid_exists(pid) and \\
        psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    open(os.path.join(home, "collector-stopped.txt"), "w").write("server alive" if alive else "ok")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
time.sleep(0.2)
path = os.path.join(home, "run", "collector.json")
open(path + ".tmp", "w").write(json.dumps({"pid": os.getpid(), "http_url": "http://127.0.0.1:1"}))
os.replace(path + ".tmp", path)
while True:
    time.sleep(0.1)
"""


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _install(root: Path, with_stub: bool = True) -> Path:
    """A classic install layout: bin/tritonserver next to backends/python (stub included)."""
    binary = _executable(root / "bin" / "tritonserver", FAKE_TRITON)
    backend = root / "backends" / "python"
    backend.mkdir(parents=True)
    for name in launcher.BACKEND_FILES:
        (backend / name).write_text(name)
    if with_stub:
        _executable(backend / launcher.STUB, "#!/bin/sh\n")
    return binary


def _wheel(root: Path) -> Path:
    """The nvidia-pytriton layout: pytriton/tritonserver with per-version stubs."""
    wheel = root / "site-packages" / "pytriton" / "tritonserver"
    _executable(wheel / "bin" / "tritonserver", "#!/bin/sh\n")
    backend = wheel / "backends" / "python"
    backend.mkdir(parents=True)
    for name in launcher.BACKEND_FILES:
        (backend / name).write_text(name)
    for version in ("3.10", VERSION, "3.13"):
        _executable(wheel / "python_backend_stubs" / version / launcher.STUB, f"stub {version}")
    (root / "site-packages" / "nvidia_pytriton.libs").mkdir()
    return wheel


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    for name in list(os.environ):
        if name.startswith("STAGELOG_") or name == "FAKE_TRITON_MODE":
            monkeypatch.delenv(name)
    monkeypatch.setenv(config.SUPERVISE, "off")  # the supervisor has tests of its own
    grpc, http, metrics = launcher.free_ports(3)
    return config.load(
        home=tmp_path / "home", grpc_port=grpc, http_port=http, metrics_port=metrics, logging=False
    )


@pytest.fixture()
def fake_triton(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = _install(tmp_path / "opt" / "tritonserver")
    monkeypatch.setenv(config.TRITONSERVER, str(binary))
    return binary


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "pipeline").mkdir(parents=True)
    return tmp_path / "repo"


# --------------------------------------------------------------------------- discovery


def test_stagelog_tritonserver_variable_wins_over_path_and_wheel(tmp_path: Path) -> None:
    explicit = _executable(tmp_path / "explicit" / "tritonserver", "#!/bin/sh\n")
    on_path = _executable(tmp_path / "onpath" / "tritonserver", "#!/bin/sh\n")
    wheel = _wheel(tmp_path)
    env = {config.TRITONSERVER: str(explicit), "PATH": str(on_path.parent)}
    assert launcher.find_tritonserver(env, wheel) == explicit.resolve()


def test_path_is_searched_before_the_wheel(tmp_path: Path) -> None:
    on_path = _executable(tmp_path / "onpath" / "tritonserver", "#!/bin/sh\n")
    wheel = _wheel(tmp_path)
    env = {"PATH": f"{tmp_path / 'empty'}:{on_path.parent}"}
    assert launcher.find_tritonserver(env, wheel) == on_path.resolve()


def test_the_wheel_binary_is_the_last_resort(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    found = launcher.find_tritonserver({"PATH": str(tmp_path / "empty")}, wheel)
    assert found == (wheel / "bin" / "tritonserver").resolve()


def test_no_tritonserver_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="no tritonserver found"):
        launcher.find_tritonserver({"PATH": str(tmp_path)}, None)


def test_variable_naming_a_missing_file_is_refused(tmp_path: Path) -> None:
    env = {config.TRITONSERVER: str(tmp_path / "nope"), "PATH": ""}
    with pytest.raises(LauncherError, match="STAGELOG_TRITONSERVER=.*not an executable"):
        launcher.find_tritonserver(env, None)


def test_installed_wheel_provides_a_binary() -> None:
    wheel = launcher.wheel_triton_dir()
    assert wheel is not None, "nvidia-pytriton is a dependency"
    assert launcher.find_tritonserver({"PATH": ""}, wheel).name == "tritonserver"
    backend, stub = launcher.backend_sources(wheel / "bin" / "tritonserver", wheel)
    assert stub.parent.name == VERSION


# --------------------------------------------------------------------------- backend folder


def test_wheel_stub_for_the_running_python_is_chosen(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    binary = _executable(tmp_path / "elsewhere" / "bin" / "tritonserver", "#!/bin/sh\n")
    backend, stub = launcher.backend_sources(binary, wheel)
    assert backend == wheel / "backends" / "python"
    assert stub == wheel / "python_backend_stubs" / VERSION / launcher.STUB


def test_missing_stub_is_a_clear_error(tmp_path: Path) -> None:
    binary = _install(tmp_path / "opt", with_stub=False)
    with pytest.raises(LauncherError, match=f"stub for Python {VERSION}"):
        launcher.backend_sources(binary, None)


def test_backend_folder_links_the_three_files_and_is_idempotent(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    backend, stub = launcher.backend_sources(wheel / "bin" / "tritonserver", wheel)
    home = tmp_path / "home"
    target = launcher.prepare_backend_dir(home, backend, stub)
    assert target == home / "backends"
    names = sorted(p.name for p in (target / "python").iterdir())
    assert names == sorted([*launcher.BACKEND_FILES, launcher.STUB, *launcher.STUB_PACKAGES])
    # The stub ignores PYTHONPATH: the repository's packages are reached through this folder.
    assert (target / "python" / "riskpipe").resolve() == config.REPO_ROOT / "riskpipe"
    assert (target / "python" / launcher.STUB).read_text() == f"stub {VERSION}"
    # A stale link (another Python's stub) is replaced; running twice changes nothing.
    (target / "python" / launcher.STUB).unlink()
    (target / "python" / launcher.STUB).symlink_to(
        wheel / "python_backend_stubs" / "3.10" / launcher.STUB
    )
    launcher.prepare_backend_dir(home, backend, stub)
    launcher.prepare_backend_dir(home, backend, stub, packages_root=tmp_path / "other")
    assert (target / "python" / launcher.STUB).read_text() == f"stub {VERSION}"
    # Another checkout's packages replace the links.
    other = tmp_path / "other" / "riskpipe"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    launcher.prepare_backend_dir(home, backend, stub, packages_root=tmp_path / "other")
    assert (target / "python" / "riskpipe").resolve() == other


def test_library_path_puts_the_wheel_libraries_first(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    value = launcher.library_path(wheel / "bin" / "tritonserver", wheel, "/usr/x:/usr/y")
    parts = value.split(":")
    assert parts[0] == str(tmp_path / "site-packages" / "nvidia_pytriton.libs")
    assert parts[-2:] == ["/usr/x", "/usr/y"]


# --------------------------------------------------------------------------- environment


def test_stack_env_exports_settings_path_and_pythonpath(tmp_path: Path) -> None:
    settings = config.load(home=tmp_path, logging=False, device="gpu", grpc_port=9101)
    wheel = _wheel(tmp_path)
    env = launcher.stack_env(
        settings, wheel / "bin" / "tritonserver", "2.51.0", {"PATH": "/usr/bin"}, wheel
    )
    assert env["PATH"].split(":")[0] == str(Path(sys.prefix) / "bin")
    assert env["PYTHONPATH"].split(":")[0] == str(config.REPO_ROOT)
    assert "nvidia_pytriton.libs" in env["LD_LIBRARY_PATH"]
    assert env[config.LOGGING] == "off"
    assert env[config.DEVICE] == "gpu"
    assert env[config.GRPC_PORT] == "9101"
    assert env[config.TRITON_VERSION] == "2.51.0"
    assert env[config.HOME] == str(tmp_path.resolve())
    # The stubs read the same settings back through logging_backend.config.
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if key.startswith("STAGELOG_"):
                mp.setenv(key, value)
        # plus what only the launcher knows: the server's version (and binary, when exported)
        expected = dataclasses.replace(
            settings, triton_version="2.51.0", tritonserver=env.get(config.TRITONSERVER, "")
        )
        assert config.load() == expected


def test_triton_command_binds_loopback_and_appends_extra_args(settings: config.Settings) -> None:
    command = launcher.triton_command(
        settings, Path("/t/tritonserver"), Path("/repo"), Path("/b"), ["--trace-config=level=OFF"]
    )
    assert "--grpc-address=127.0.0.1" in command
    assert "--allow-http=false" in command  # HTTP off by default (Triton 2.51's JSON crash)
    assert not any(arg.startswith("--http-") for arg in command)
    assert "--metrics-address=127.0.0.1" in command
    assert f"--grpc-port={settings.grpc_port}" in command
    assert "--backend-directory=/b" in command
    assert "--model-control-mode=explicit" in command and "--load-model=*" in command
    assert command[-1] == "--trace-config=level=OFF"


def test_http_is_opt_in_and_then_bound_to_loopback(
    settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.HTTP, "on")
    settings = config.load(home=settings.home, http_port=settings.http_port)
    assert settings.http
    command = launcher.triton_command(settings, Path("/t/tritonserver"), Path("/r"), Path("/b"))
    assert "--allow-http=true" in command and "--http-address=127.0.0.1" in command
    assert f"--http-port={settings.http_port}" in command


def test_version_is_read_from_the_option_table(fake_triton: Path) -> None:
    assert launcher.triton_version(fake_triton, dict(os.environ)) == "9.8.7"


def test_version_probe_failure_shows_the_output(tmp_path: Path) -> None:
    binary = _executable(tmp_path / "tritonserver", "#!/bin/sh\necho 'cannot open libfoo.so'\n")
    with pytest.raises(LauncherError, match="libfoo"):
        launcher.triton_version(binary, dict(os.environ))


# --------------------------------------------------------------------------- ports and config


def test_taken_port_is_refused_with_its_role(settings: config.Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", settings.http_port))
        sock.listen()
        with pytest.raises(LauncherError, match=f"HTTP port {settings.http_port} .* in use"):
            launcher.check_ports(settings)


def test_equal_ports_are_refused(tmp_path: Path) -> None:
    settings = config.load(home=tmp_path, grpc_port=9000, http_port=9000, metrics_port=9002)
    with pytest.raises(LauncherError, match="ports must differ"):
        launcher.check_ports(settings)


def test_cli_reports_a_bad_port_variable_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.GRPC_PORT, "eighty")
    result = CliRunner().invoke(cli.app, ["up"])
    assert result.exit_code == 1
    assert "STAGELOG_GRPC_PORT='eighty' is not an integer" in result.output
    assert "Traceback" not in result.output


def test_bad_logging_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.LOGGING, "maybe")
    with pytest.raises(ConfigError, match="STAGELOG_LOGGING"):
        config.load()


def test_missing_model_repository_is_refused(settings: config.Settings, tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="model repository .* does not exist"):
        launcher.up(settings, model_repository=tmp_path / "nope")


# --------------------------------------------------------------------------- lifecycle (fake)


def test_up_status_down_with_a_fake_server(
    settings: config.Settings, fake_triton: Path, repo: Path
) -> None:
    stack = launcher.up(settings, model_repository=repo, timeout=30, extra_triton_args=["--x=1"])
    try:
        assert stack.triton_version == "9.8.7"
        assert stack.collector_pid is None  # logging off: no collector
        pid_file = settings.pids_dir / "tritonserver.pid"
        assert int(pid_file.read_text()) == stack.triton_pid
        env_text = (settings.home / "triton-env.txt").read_text()
        assert "'STAGELOG_LOGGING': 'off'" in env_text
        assert "'STAGELOG_TRITON_VERSION': '9.8.7'" in env_text
        assert "'x': '1'" in env_text
        report = launcher.status(settings)
        assert report.ready and report.pids["tritonserver"] == stack.triton_pid
        assert report.stack["grpc_port"] == settings.grpc_port
        # A client started later finds the stack's ports and store from the home alone.
        found = launcher.settings_from_stack(settings.home)
        assert dataclasses.replace(found, tritonserver="") == settings  # binary: from the env
        with pytest.raises(LauncherError, match="already running"):
            launcher.up(settings, model_repository=repo)
    finally:
        stopped = launcher.down(settings)
    assert stopped == {"tritonserver": stack.triton_pid}
    assert not psutil.pid_exists(stack.triton_pid) or (
        psutil.Process(stack.triton_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert not launcher.status(settings).running
    assert launcher.down(settings) == {}


def test_crash_at_start_fails_fast_with_the_log_tail(
    settings: config.Settings, fake_triton: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRITON_MODE", "crash")
    started = time.monotonic()
    with pytest.raises(LauncherError, match="(?s)exited with code 3.*failed to load: boom"):
        launcher.up(settings, model_repository=repo, timeout=60)
    assert time.monotonic() - started < 30
    assert not launcher.status(settings).running


def test_readiness_timeout_stops_the_server_and_shows_the_tail(
    settings: config.Settings, fake_triton: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRITON_MODE", "hang")
    with pytest.raises(LauncherError, match="(?s)not ready .* within 2 s.*still loading pipeline"):
        launcher.up(settings, model_repository=repo, timeout=2)
    assert launcher.running_pid(settings, "tritonserver") is None
    assert not (settings.pids_dir / "tritonserver.pid").exists()


def test_stale_pid_file_does_not_block_up(
    settings: config.Settings, fake_triton: Path, repo: Path
) -> None:
    settings.pids_dir.mkdir(parents=True)
    # Our own pid: alive, but not a tritonserver, so it is not taken for a running stack.
    (settings.pids_dir / "tritonserver.pid").write_text(f"{os.getpid()}\n")
    stack = launcher.up(settings, model_repository=repo, timeout=30)
    try:
        assert stack.triton_pid != os.getpid()
    finally:
        launcher.down(settings)


def test_collector_starts_before_the_server_and_stops_after_it(
    settings: config.Settings,
    fake_triton: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = tmp_path / "pkg"
    (package / "fakecollector.py").parent.mkdir()
    (package / "fakecollector.py").write_text(textwrap.dedent(FAKE_COLLECTOR))
    monkeypatch.setenv("PYTHONPATH", str(package))
    monkeypatch.setenv("FAKE_TRITON_MODE", "need-collector")
    monkeypatch.setattr(launcher, "COLLECTOR_MODULE", "fakecollector")
    logging_on = config.load(
        home=settings.home,
        grpc_port=settings.grpc_port,
        http_port=settings.http_port,
        metrics_port=settings.metrics_port,
        logging=True,
    )
    stack = launcher.up(logging_on, model_repository=repo, timeout=30)
    try:
        assert stack.collector_pid is not None
        assert stack.query_url == "http://127.0.0.1:1"
        assert launcher.status(logging_on).pids["collector"] == stack.collector_pid
        stored = json.loads((logging_on.home / "run" / "stack.json").read_text())
        assert stored["collector_pid"] == stack.collector_pid
    finally:
        stopped = launcher.down(logging_on)
    assert list(stopped) == ["tritonserver", "collector"]
    assert (logging_on.home / "collector-stopped.txt").read_text() == "ok"
    assert "fake tritonserver starting" in (logging_on.logs_dir / "tritonserver.log").read_text()


def test_collector_that_dies_fails_up_with_its_log(
    settings: config.Settings,
    fake_triton: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "badcollector.py").write_text("raise SystemExit('migrations failed: disk full')\n")
    monkeypatch.setenv("PYTHONPATH", str(package))
    monkeypatch.setattr(launcher, "COLLECTOR_MODULE", "badcollector")
    logging_on = config.load(
        home=settings.home,
        grpc_port=settings.grpc_port,
        http_port=settings.http_port,
        metrics_port=settings.metrics_port,
        logging=True,
    )
    with pytest.raises(LauncherError, match="(?s)collector exited with code 1.*disk full"):
        launcher.up(logging_on, model_repository=repo, timeout=30)
    assert launcher.running_pid(logging_on, "tritonserver") is None


def test_ctrl_c_while_waiting_stops_what_was_started(
    settings: config.Settings, fake_triton: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRITON_MODE", "hang")
    calls = []

    def interrupted(*args: object) -> bool:
        calls.append(args)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return False

    monkeypatch.setattr(launcher, "grpc_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        launcher.up(settings, model_repository=repo, timeout=60)
    assert launcher.running_pid(settings, "tritonserver") is None
    assert not (settings.pids_dir / "tritonserver.pid").exists()


def test_a_collector_started_by_hand_is_shown_refused_by_up_and_stopped_by_down(
    settings: config.Settings,
    fake_triton: Path,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = tmp_path / "pkg"
    (package / "fakecollector.py").parent.mkdir()
    (package / "fakecollector.py").write_text(textwrap.dedent(FAKE_COLLECTOR))
    monkeypatch.setattr(launcher, "COLLECTOR_MODULE", "fakecollector")
    (settings.home / "run").mkdir(parents=True)
    (settings.home / "pids").mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(package), STAGELOG_HOME=str(settings.home))
    stray = subprocess.Popen([sys.executable, "-m", "fakecollector"], env=env)
    try:
        deadline = time.monotonic() + 20
        while not (settings.home / "run" / "collector.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert launcher.status(settings).stray_collector == stray.pid
        with pytest.raises(LauncherError, match="restart collector"):
            launcher.up(settings, model_repository=repo, timeout=30)
        assert launcher.down(settings) == {"collector": stray.pid}
        assert stray.wait(10) == 0
    finally:
        if stray.poll() is None:
            stray.kill()
