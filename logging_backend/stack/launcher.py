"""Start, stop and inspect the local stack: the collector and Triton Inference Server.

`up` finds a ``tritonserver`` binary (``STAGELOG_TRITONSERVER``, then ``PATH``, then the one
bundled in the ``nvidia-pytriton`` wheel), prepares a Python-backend folder under
``$STAGELOG_HOME/backends`` with the stub for the running Python, starts the collector (unless
logging is off) and then the server bound to 127.0.0.1, and returns once the server and the
``pipeline`` model are ready. Everything it starts is recorded under ``$STAGELOG_HOME``
(``pids/``, ``logs/``, ``run/``) so that `down` and `status` find it from another process.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from logging_backend import config, store
from logging_backend.config import REPO_ROOT, Settings
from logging_backend.errors import LauncherError
from logging_backend.stack import refusals
from logging_backend.store import access

LOG = logging.getLogger(__name__)

TRITON = "tritonserver"
COLLECTOR = "collector"
SUPERVISOR = "supervisor"
# Order matters: `down` stops the supervisor first (nothing restarts what is being stopped),
# then the server, so that the collector can drain what it spooled.
PROCESSES = (SUPERVISOR, TRITON, COLLECTOR)

DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "model_repository"
DEFAULT_READY_MODEL = "pipeline"
DEFAULT_TIMEOUT_S = 120.0
TRITON_STOP_TIMEOUT_S = 30.0
COLLECTOR_STOP_TIMEOUT_S = 60.0
PRIVATE_UMASK = 0o077
T = TypeVar("T")
LOG_TAIL_LINES = 40

BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB = "triton_python_backend_stub"
COLLECTOR_MODULE = "logging_backend.stack.collector_process"  # the collector + alerts
SUPERVISOR_MODULE = "logging_backend.stack.supervisor"
SUPERVISOR_STOP_TIMEOUT_S = 10.0
# Packages of this repository that model.py files import (linked into the backend folder).
STUB_PACKAGES = ("logging_backend", "adapters", "riskpipe", "training")


# --------------------------------------------------------------------------- discovery


def wheel_triton_dir() -> Path | None:
    """Return ``pytriton/tritonserver`` of the installed nvidia-pytriton wheel, if any."""
    try:
        import pytriton  # noqa: PLC0415 - optional: only its files are used
    except ImportError:
        return None
    path = Path(pytriton.__file__).resolve().parent / "tritonserver"
    return path if path.is_dir() else None


def find_tritonserver(
    env: Mapping[str, str] | None, wheel_dir: Path | None, explicit: str | None = None
) -> Path:
    """Find the tritonserver binary: ``STAGELOG_TRITONSERVER``, then ``PATH``, then the wheel.

    Args:
        env: Environment to read ``PATH`` (and, without ``explicit``, ``STAGELOG_TRITONSERVER``)
            from (default: os.environ).
        wheel_dir: The wheel's ``tritonserver`` folder (`wheel_triton_dir`), or None.
        explicit: ``Settings.tritonserver``; wins over ``env``.

    Returns:
        The absolute path of an executable tritonserver.

    Raises:
        LauncherError: If ``STAGELOG_TRITONSERVER`` names no executable file, or none is found.
    """
    env = os.environ if env is None else env
    if explicit is None:
        explicit = config.load(tritonserver=env.get(config.TRITONSERVER) or "").tritonserver
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LauncherError(f"{config.TRITONSERVER}={explicit!r} is not an executable file")
        return path.resolve()
    on_path = shutil.which(TRITON, path=env.get("PATH", ""))
    if on_path:
        return Path(on_path).resolve()
    if wheel_dir is not None:
        bundled = wheel_dir / "bin" / TRITON
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled.resolve()
    raise LauncherError(
        f"no tritonserver found: set {config.TRITONSERVER}, put one on PATH, "
        "or install nvidia-pytriton (pip install -e .)"
    )


def backend_sources(binary: Path, wheel_dir: Path | None) -> tuple[Path, Path]:
    """Return (Python backend folder, stub) to use with ``binary``.

    A tritonserver installed the classic way (``/opt/tritonserver/bin``) has
    ``../backends/python`` next to it, stub included; otherwise the wheel provides the backend
    and one stub per Python version.

    Args:
        binary: The tritonserver binary.
        wheel_dir: The wheel's ``tritonserver`` folder (`wheel_triton_dir`), or None.

    Raises:
        LauncherError: If no Python backend or no stub for the running Python is found.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates: list[tuple[Path, Path]] = []
    sibling = binary.resolve().parent.parent / "backends" / "python"
    candidates.append((sibling, sibling / STUB))
    if wheel_dir is not None:
        candidates.append(
            (
                wheel_dir / "backends" / "python",
                wheel_dir / "python_backend_stubs" / version / STUB,
            )
        )
    for backend, stub in candidates:
        if all((backend / name).is_file() for name in BACKEND_FILES) and stub.is_file():
            return backend, stub
    looked = ", ".join(f"{b} + {s}" for b, s in candidates)
    raise LauncherError(
        f"no Python backend with a stub for Python {version} found (looked at: {looked})"
    )


def library_path(binary: Path, wheel_dir: Path | None, current: str = "") -> str:
    """Return ``LD_LIBRARY_PATH`` for tritonserver: the wheel's bundled libraries first."""
    dirs: list[str] = []
    if wheel_dir is not None:
        libs = wheel_dir.parent.parent / "nvidia_pytriton.libs"
        if libs.is_dir():
            dirs.append(str(libs))
    lib = binary.resolve().parent.parent / "lib"
    if lib.is_dir():
        dirs.append(str(lib))
    dirs.extend(p for p in current.split(":") if p and p not in dirs)
    return ":".join(dirs)


def _link(target: Path, source: Path) -> None:
    """Make ``target`` a symlink to ``source`` (a copy where symlinks are impossible)."""
    source = source.resolve()
    if target.is_symlink() and Path(os.readlink(target)) == source:
        return
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    try:
        target.symlink_to(source)
    except OSError:
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def prepare_backend_dir(
    home: Path, backend: Path, stub: Path, packages_root: Path | None = REPO_ROOT
) -> Path:
    """Fill ``home/backends/python`` with the Python backend and the stub; return ``home/backends``.

    Symlinks keep the stub's ``$ORIGIN``-relative library lookup working; where symlinks are not
    possible, the files are copied. The repository's packages the stages import
    (`STUB_PACKAGES`) are linked there too: Triton's stub starts its interpreter without reading
    ``PYTHONPATH`` (its ``sys.path`` is the virtualenv's plus the model and backend folders), so
    this is what makes the stubs run the same code as the launcher, even when the virtualenv's
    editable install points at another checkout.

    Args:
        home: The STAGELOG_HOME.
        backend: Folder holding the files of `BACKEND_FILES`.
        stub: The stub binary for the running Python.
        packages_root: Where `STUB_PACKAGES` live (None links none).
    """
    backends = home / "backends"
    target_dir = backends / "python"
    target_dir.mkdir(parents=True, exist_ok=True)
    sources = {name: backend / name for name in BACKEND_FILES}
    sources[STUB] = stub
    if packages_root is not None:
        for package in STUB_PACKAGES:
            if (packages_root / package / "__init__.py").is_file():
                sources[package] = packages_root / package
    for name, source in sources.items():
        _link(target_dir / name, source)
    return backends


def triton_version(binary: Path, env: Mapping[str, str]) -> str:
    """Ask the binary for its version without opening a port.

    Started on a model repository that does not exist and with every endpoint off, tritonserver
    prints its option table (``server_version``) and exits at once.

    Raises:
        LauncherError: If the binary cannot run or prints no version.
    """
    missing = Path("/nonexistent-stagelog-version-probe")
    command = [
        str(binary),
        f"--model-repository={missing}",
        "--allow-http=false",
        "--allow-grpc=false",
        "--allow-metrics=false",
    ]
    try:
        done = subprocess.run(
            command, env=dict(env), capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(f"cannot run {binary}: {exc}") from exc
    match = re.search(r"server_version\s*\|\s*([0-9][\w.\-]*)", done.stdout + done.stderr)
    if not match:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise LauncherError(f"{binary} printed no server_version; its output:\n{tail}")
    return match.group(1)


# --------------------------------------------------------------------------- state files


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.pids_dir / f"{name}.pid"


def _log_file(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.log"


def run_dir(settings: Settings) -> Path:
    """Where the stack writes what other processes need to find it (stack.json, collector.json)."""
    return settings.home / "run"


def collector_file(settings: Settings) -> Path:
    """The file the collector writes once it is ready (``pid``, ``http_url``, ``user``, ...)."""
    return run_dir(settings) / "collector.json"


def _stack_file(settings: Settings) -> Path:
    return run_dir(settings) / "stack.json"


def _matches(proc: psutil.Process, name: str) -> bool:
    """Whether a live process is the one we started (guards against a reused pid)."""
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if name == TRITON:
        return TRITON in cmdline
    if name == SUPERVISOR:
        return SUPERVISOR_MODULE in cmdline
    return COLLECTOR_MODULE in cmdline


def running_pid(settings: Settings, name: str) -> int | None:
    """Return the pid of ``name`` if its pid file names a live process of that kind."""
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return pid if _matches(proc, name) else None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- ports


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the server sets, so a port in TIME_WAIT is not reported as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports free on 127.0.0.1 right now (for tests and benchmarks)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def check_ports(settings: Settings) -> None:
    """Refuse ports that collide with each other or are already taken.

    Raises:
        LauncherError: Naming the port and its role.
    """
    ports = {
        "gRPC": settings.grpc_port,
        "HTTP": settings.http_port,
        "metrics": settings.metrics_port,
    }
    if len(set(ports.values())) != len(ports):
        raise LauncherError(f"ports must differ: {ports}")
    for role, port in ports.items():
        if not port_free(port):
            raise LauncherError(
                f"{role} port {port} on 127.0.0.1 is already in use; stop what uses it or "
                f"choose another with --{role.lower()}-port / STAGELOG_{role.upper()}_PORT"
            )


# --------------------------------------------------------------------------- environment


def stack_env(
    settings: Settings,
    binary: Path,
    version: str,
    base: Mapping[str, str] | None = None,
    wheel_dir: Path | None = None,
) -> dict[str, str]:
    """Build the environment of tritonserver and the collector (the stubs inherit it).

    The virtualenv's ``bin`` comes first on ``PATH`` (the stub finds numpy through it), the
    repository root first on ``PYTHONPATH`` (``model.py`` imports ``riskpipe`` and
    ``logging_backend``), and every ``STAGELOG_*`` setting is exported explicitly. When
    ``refusal_log.c`` was built for this home, ``LD_PRELOAD`` names it (`refusals`).
    """
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = ":".join([venv_bin] + [p for p in env.get("PATH", "").split(":") if p])
    env["LD_LIBRARY_PATH"] = library_path(binary, wheel_dir, env.get("LD_LIBRARY_PATH", ""))
    pythonpath = [str(REPO_ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(":") if p and p != str(REPO_ROOT)
    ]
    env["PYTHONPATH"] = ":".join(pythonpath)
    env.update(
        {
            config.HOME: str(settings.home),
            config.DSN: settings.dsn,
            config.GRPC_PORT: str(settings.grpc_port),
            config.HTTP_PORT: str(settings.http_port),
            config.METRICS_PORT: str(settings.metrics_port),
            config.LOGGING: "on" if settings.logging else "off",
            config.FLUSH_MS: str(settings.flush_ms),
            config.ROLLUP_INTERVAL_MS: str(settings.rollup_interval_ms),
            config.SPOOL_BUDGET_MB: str(settings.spool_budget_mb),
            config.SPOOL_MIN_FREE_MB: str(settings.spool_min_free_mb),
            config.DEVICE: settings.device,
            config.TRITONSERVER: str(binary),
            config.TRITON_VERSION: version,
        }
    )
    env.update(refusals.preload_env(settings.home, env, refusals.enabled(settings)))
    return env


def triton_command(
    settings: Settings,
    binary: Path,
    model_repository: Path,
    backend_dir: Path,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Return the tritonserver command line: every endpoint on 127.0.0.1, our backend folder.

    Models are loaded in explicit model-control mode (all of them at start), so that the
    supervisor can reload one model whose stub died. HTTP/REST is off unless
    ``STAGELOG_HTTP=on``: Triton 2.51 has no limit on the size or nesting of an HTTP JSON body
    (a body nested 120,000 levels deep crashes the server with SIGSEGV), and gRPC is the
    documented interface.
    """
    http = (
        ["--allow-http=true", "--http-address=127.0.0.1", f"--http-port={settings.http_port}"]
        if settings.http
        else ["--allow-http=false"]
    )
    return [
        str(binary),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_dir}",
        "--model-control-mode=explicit",
        "--load-model=*",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={settings.grpc_port}",
        *http,
        "--metrics-address=127.0.0.1",
        f"--metrics-port={settings.metrics_port}",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        "--exit-timeout-secs=20",
        *extra_args,
    ]


# --------------------------------------------------------------------------- up / down / status


@dataclass
class Stack:
    """What `up` started, as written to ``run/stack.json``."""

    home: str
    dsn: str
    grpc_port: int
    http_port: int
    metrics_port: int
    logging: bool
    device: str
    model_repository: str
    tritonserver: str
    triton_version: str
    triton_pid: int
    collector_pid: int | None = None
    query_url: str | None = None  # the query door (ClickHouse HTTP interface), collector.json
    supervisor_pid: int | None = None
    http: bool = False
    started_at: float = field(default_factory=time.time)
    extra_triton_args: list[str] = field(default_factory=list)

    @property
    def grpc_url(self) -> str:
        """``host:port`` for ``tritonclient.grpc``."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of Triton's HTTP endpoint."""
        return f"http://127.0.0.1:{self.http_port}"


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def server_ready(http_port: int, model: str | None = DEFAULT_READY_MODEL) -> bool:
    """Whether Triton reports ready (and ``model`` ready, if given) on HTTP ``http_port``."""
    base = f"http://127.0.0.1:{http_port}/v2"
    if not _http_ok(f"{base}/health/ready"):
        return False
    return model is None or _http_ok(f"{base}/models/{model}/ready")


def grpc_ready(grpc_port: int, model: str | None = DEFAULT_READY_MODEL) -> bool:
    """Whether Triton reports ready (and ``model`` ready, if given) over gRPC on ``grpc_port``.

    Triton's readiness only; `stagelog status` adds what the supervisor's probes found.
    """
    import tritonclient.grpc as grpcclient  # noqa: PLC0415 - heavy; only readiness needs it

    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        try:
            if not client.is_server_ready(client_timeout=2.0):
                return False
            return model is None or bool(client.is_model_ready(model, client_timeout=2.0))
        finally:
            client.close()
    except Exception:  # refused, unavailable, timed out: not ready
        return False


def _start(
    settings: Settings, name: str, command: list[str], env: Mapping[str, str]
) -> subprocess.Popen:
    log_path = _log_file(settings, name)
    if log_path.exists():
        log_path.replace(log_path.with_suffix(".log.1"))
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as log:
        # A new session: the stack outlives `stagelog up` and a Ctrl-C in its terminal, and
        # `down` can signal the whole process group (Triton's stub processes included).
        proc = subprocess.Popen(  # noqa: S603 - command built from resolved paths
            command,
            env=dict(env),
            cwd=str(settings.home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,  # spool segments, store files, logs: the owner's only
        )
    _pid_file(settings, name).write_text(f"{proc.pid}\n")
    LOG.info("started %s (pid %d), log %s", name, proc.pid, log_path)
    return proc


def _fail(settings: Settings, name: str, message: str) -> LauncherError:
    log_path = _log_file(settings, name)
    tail = log_tail(log_path)
    down(settings)
    detail = f"\n--- last lines of {log_path} ---\n{tail}" if tail else f" ({log_path} is empty)"
    return LauncherError(f"{message}{detail}")


def _start_collector(
    settings: Settings, env: Mapping[str, str], deadline: float
) -> tuple[int, str | None]:
    ready_file = collector_file(settings)
    ready_file.unlink(missing_ok=True)
    proc = _start(settings, COLLECTOR, [sys.executable, "-m", COLLECTOR_MODULE], env)
    while True:
        if ready_file.exists():
            try:
                info = json.loads(ready_file.read_text())
            except (OSError, ValueError):
                info = None  # being written; read again
            if isinstance(info, dict):
                return proc.pid, info.get("http_url")
        if proc.poll() is not None:
            raise _fail(settings, COLLECTOR, f"the collector exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise _fail(
                settings, COLLECTOR, f"the collector did not write {ready_file} in time"
            )
        time.sleep(0.05)


def _private_files(func: Callable[..., T]) -> Callable[..., T]:
    """Run ``func`` with umask 077: every file and folder it makes is the owner's only."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        previous = os.umask(PRIVATE_UMASK)
        try:
            return func(*args, **kwargs)
        finally:
            os.umask(previous)

    return wrapper


@_private_files
def up(
    settings: Settings,
    model_repository: Path | str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_triton_args: Sequence[str] = (),
    ready_model: str | None = DEFAULT_READY_MODEL,
    collector: bool = True,
    supervise: bool = True,
) -> Stack:
    """Start the collector (unless logging is off) and tritonserver; return once ready.

    Args:
        settings: Resolved settings (home, ports, logging, device, ...).
        model_repository: Triton model repository (default: the repository's model_repository).
        timeout: Seconds to wait for the collector and then the server and model to be ready.
        extra_triton_args: Arguments appended to the tritonserver command line (e.g.
            ``--trace-config=...``).
        ready_model: Model that must report ready; None waits for the server only.
        collector: False starts no collector even with logging on: the stages' segments stay
            in the spool (the GPU check on a machine without the ClickHouse engine).
        supervise: False starts no supervisor (``STAGELOG_SUPERVISE=off`` too): nothing
            restarts what dies (benchmarks that kill the server on purpose).

    With ``settings.device == "gpu"`` and no ``model_repository`` given, the stack serves a
    generated copy of the repository with the members on ``KIND_GPU`` instances
    (``$STAGELOG_HOME/model_repository_gpu``, see ``logging_backend.stack.gpu_repository``).

    Returns:
        The started stack (also written to ``$STAGELOG_HOME/run/stack.json``).

    Raises:
        LauncherError: If a stack already runs in this home, a port is taken, no tritonserver
            is found, or the stack is not ready in time (with the log's last lines). Whatever
            was started is stopped again.
    """
    repo = Path(model_repository or DEFAULT_MODEL_REPOSITORY).expanduser().resolve()
    if not repo.is_dir():
        raise LauncherError(f"model repository {repo} does not exist")
    for name in PROCESSES:
        pid = running_pid(settings, name)
        if pid is not None:
            raise LauncherError(
                f"a stack is already running in {settings.home} ({name} pid {pid}); "
                f"run `stagelog down --home {settings.home}` first"
            )
    stray = _stray_collector(settings)
    if stray is not None:
        raise LauncherError(
            f"a collector that `stagelog up` did not start (pid {stray}) holds the store of "
            f"{settings.home}; stop it (kill {stray}) and run `stagelog up` again, or restart "
            "the collector the supported way: `stagelog restart collector`"
        )
    check_ports(settings)
    # After the checks: a running stack may be serving the generated GPU repository.
    if settings.device == "gpu" and model_repository is None:
        from logging_backend.collector.sampler import gpu_count  # noqa: PLC0415
        from logging_backend.stack.gpu_repository import write_gpu_repository  # noqa: PLC0415

        if gpu_count() > 0:
            repo = write_gpu_repository(repo, settings.home / "model_repository_gpu")
        else:
            LOG.warning("STAGELOG_DEVICE=gpu but NVML sees no GPU: serving %s (KIND_CPU); "
                        "each member logs its CPU fallback", repo)

    wheel_dir = wheel_triton_dir()
    binary = find_tritonserver(os.environ, wheel_dir, explicit=settings.tritonserver or None)
    backend, stub = backend_sources(binary, wheel_dir)
    access.private_home(settings.home)
    for directory in (settings.logs_dir, settings.pids_dir, run_dir(settings)):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.logging and collector:
        access.ensure(settings)  # the query door's password, made once per home (0600)
    for name in PROCESSES:
        _pid_file(settings, name).unlink(missing_ok=True)
    _stack_file(settings).unlink(missing_ok=True)
    backend_dir = prepare_backend_dir(settings.home, backend, stub)
    if refusals.enabled(settings):
        refusals.build(settings.home)  # once per home; without a compiler: not recorded
    probe_env = stack_env(settings, binary, "unknown", wheel_dir=wheel_dir)
    version = triton_version(binary, probe_env)
    env = stack_env(settings, binary, version, wheel_dir=wheel_dir)

    deadline = time.monotonic() + timeout
    collector_pid, query_url = None, None
    try:
        if settings.logging and collector:
            collector_pid, query_url = _start_collector(settings, env, deadline)
        command = triton_command(settings, binary, repo, backend_dir, extra_triton_args)
        proc = _start(settings, TRITON, command, env)
        while not grpc_ready(settings.grpc_port, ready_model):
            if proc.poll() is not None:
                raise _fail(settings, TRITON, f"tritonserver exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                what = f"model {ready_model!r}" if ready_model else "the server"
                raise _fail(
                    settings, TRITON, f"{what} not ready on 127.0.0.1:{settings.grpc_port} "
                    f"(gRPC) within {timeout:.0f} s"
                )
            time.sleep(0.1)
    except KeyboardInterrupt:
        # The processes run in their own sessions: Ctrl-C does not reach them, so stop them here.
        down(settings)
        raise

    stack = Stack(
        home=str(settings.home),
        dsn=store.redact(settings.dsn),  # no secret in stack.json
        grpc_port=settings.grpc_port,
        http_port=settings.http_port,
        metrics_port=settings.metrics_port,
        logging=settings.logging,
        device=settings.device,
        model_repository=str(repo),
        tritonserver=str(binary),
        triton_version=version,
        triton_pid=proc.pid,
        collector_pid=collector_pid,
        query_url=query_url,
        extra_triton_args=list(extra_triton_args),
        http=settings.http,
    )
    _write_private(_stack_file(settings), json.dumps(asdict(stack), indent=2) + "\n")
    if supervise and settings.supervise:
        stack.supervisor_pid = _start(
            settings, SUPERVISOR, [sys.executable, "-m", SUPERVISOR_MODULE], env
        ).pid
        _write_private(_stack_file(settings), json.dumps(asdict(stack), indent=2) + "\n")
    return stack


def _stray_collector(settings: Settings) -> int | None:
    """The pid of a live collector of this home that no pid file names (started by hand)."""
    try:
        pid = int(json.loads(collector_file(settings).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == running_pid(settings, COLLECTOR):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or not _matches(proc, COLLECTOR):
            return None
    except psutil.Error:
        return None
    return pid


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _stop(settings: Settings, name: str, timeout: float) -> int | None:
    """SIGTERM ``name``, wait, then SIGKILL its process group; return the pid stopped.

    Only the leader gets SIGTERM: tritonserver then unloads every model, so each stub runs its
    ``finalize`` (which flushes the stage log) before the server exits.
    """
    pid = running_pid(settings, name)
    if pid is None:
        _pid_file(settings, name).unlink(missing_ok=True)
        return None
    proc = psutil.Process(pid)
    try:
        proc.terminate()
    except psutil.NoSuchProcess:
        pass
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        LOG.warning("%s (pid %d) did not stop in %.0f s: killing it", name, pid, timeout)
    except psutil.NoSuchProcess:
        pass
    # Leftovers in the group (a stub whose server was killed) go too.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except (psutil.TimeoutExpired, psutil.NoSuchProcess):
        pass
    _pid_file(settings, name).unlink(missing_ok=True)
    return pid


def down(
    settings: Settings,
    triton_timeout: float = TRITON_STOP_TIMEOUT_S,
    collector_timeout: float = COLLECTOR_STOP_TIMEOUT_S,
) -> dict[str, int]:
    """Stop what `up` started in this home: the supervisor, tritonserver, then the collector.

    The collector gets SIGTERM only after the server has exited, so that it ships every segment
    the stages spooled before it stops.

    Returns:
        ``{name: pid}`` of each process that was running and is now stopped.
    """
    stopped: dict[str, int] = {}
    pid = _stop(settings, SUPERVISOR, SUPERVISOR_STOP_TIMEOUT_S)
    if pid is not None:
        stopped[SUPERVISOR] = pid
    pid = _stop(settings, TRITON, triton_timeout)
    if pid is not None:
        stopped[TRITON] = pid
    pid = _stop(settings, COLLECTOR, collector_timeout)
    if pid is not None:
        stopped[COLLECTOR] = pid
    stray = _stray_collector(settings)
    if stray is not None:
        # A collector of this home started by hand (collector.json names it): it holds the
        # store's lock, so `up` could not start again while it runs.
        _pid_file(settings, COLLECTOR).write_text(f"{stray}\n")
        if _stop(settings, COLLECTOR, collector_timeout) is not None:
            stopped[COLLECTOR] = stray
    _stack_file(settings).unlink(missing_ok=True)
    collector_file(settings).unlink(missing_ok=True)
    return stopped


@dataclass
class Status:
    """What runs in a home, as `stagelog status` reports it."""

    home: str
    pids: dict[str, int | None]
    stack: dict | None
    ready: bool
    down: dict[str, str] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    query_url: str | None = None
    stray_collector: int | None = None

    @property
    def running(self) -> bool:
        """Whether any process of the stack is alive."""
        return any(pid is not None for pid in self.pids.values())


def status(settings: Settings, ready_model: str | None = DEFAULT_READY_MODEL) -> Status:
    """Report the live processes of this home, the ports they use and whether all is ready.

    Ready means: Triton says ready over gRPC, and the supervisor's last probes found no stage,
    server or collector down (``run/health.json``, written about every second).
    """
    from logging_backend.stack import service_state  # noqa: PLC0415

    pids = {name: running_pid(settings, name) for name in PROCESSES}
    try:
        stack = json.loads(_stack_file(settings).read_text())
    except (OSError, ValueError):
        stack = None
    grpc_port = stack["grpc_port"] if stack else settings.grpc_port
    ready = pids[TRITON] is not None and grpc_ready(grpc_port, ready_model)
    down: dict[str, str] = {}
    health = service_state.read_health(settings) if pids[SUPERVISOR] is not None else None
    if health is not None:
        down = dict(health.get("down") or {})
        if down:
            ready = False
    try:
        query_url = json.loads(collector_file(settings).read_text()).get("http_url")
    except (OSError, ValueError, AttributeError):
        query_url = None
    return Status(
        home=str(settings.home), pids=pids, stack=stack, ready=ready, down=down,
        events=service_state.recent_events(settings), query_url=query_url,
        stray_collector=_stray_collector(settings),
    )


def settings_from_stack(home: Path | str | None = None) -> Settings:
    """Settings of the stack `up` started in ``home`` (ports, DSN, ...), else from the environment.

    Clients started later (`clients.score`, the demo, `stagelog sql`) use this to find a stack
    started with non-default ports.
    """
    settings = config.load(home=home)
    try:
        stack = json.loads(_stack_file(settings).read_text())
    except (OSError, ValueError):
        return settings
    dsn = stack["dsn"] if ":***@" not in stack["dsn"] else settings.dsn  # redacted: from env
    return config.load(
        home=settings.home,
        dsn=dsn,
        grpc_port=stack["grpc_port"],
        http_port=stack["http_port"],
        metrics_port=stack["metrics_port"],
        logging=stack["logging"],
        device=stack["device"],
        http=stack.get("http"),  # the running server's, not this shell's
    )
