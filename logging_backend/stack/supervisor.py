"""The supervisor: keeps tritonserver, every stage and the collector serving.

``python -m logging_backend.stack.supervisor`` is started by ``stagelog up`` once the stack is ready
(pid file ``pids/supervisor.pid``) and stopped first by ``stagelog down``. Every
``STAGELOG_PROBE_MS`` (default 5000; the processes every 0.25 s) it checks:

- **tritonserver** and **the collector**: is the process of its pid file alive? A dead one is
  a ``crash`` (exit code or signal when the supervisor started it, else the signal Triton's
  handler printed), and is started again with the launcher's own command line.
- **tritonserver's liveness**: every ``LIVE_EVERY_S`` (1 s) a gRPC ``ServerLive`` call with a
  ``LIVE_TIMEOUT_S`` (2 s) deadline. A server that is running but answers none of them for
  ``STAGELOG_HANG_MS`` (default 10000: every check of a 10 s stretch failed, at least
  ``HANG_MIN_FAILURES`` of them) is **hung** (stopped, deadlocked, swapped out): a ``crash``
  row whose detail starts ``hung:``, SIGKILL to the server's own process group (the launcher
  starts it in a session of its own, so the group is the server and its stubs; a pid that is
  not the tritonserver of this home's pid file is never signalled), then the usual restart.
  ``ServerLive`` runs on Triton's gRPC front end, not on a model: at load (32 clients on the
  2-core VM) it answered within milliseconds (docs/architecture.md has the measured figures), so
  a slow server is not killed by mistake; a slow *stage* is the stage probe's business (reload).
- **every stage**, for real: Triton's ready endpoints keep saying ready after a stub died
  (2.51), so the supervisor sends a tiny inference: a valid one-row ``pipeline`` request
  (preprocess, features, the members, aggregate), one row of zeros to each member version
  directly, and a ``feedback`` request the stub itself must refuse (``KIND=probe``: no report
  is written). ``Stub process 'forest_0_0' is not healthy`` names the stage; a model the
  repository index does not list as ``READY`` is down too. A down stage is reloaded through
  Triton's model-control API (the server runs with ``--model-control-mode=explicit
  --load-model=*``), which starts new stubs; shared-memory regions the dead stubs left in
  ``/dev/shm`` are removed. Probe requests carry request ids ``stagelog-probe-<model>``.

Restarts back off (0.5 s doubling to ``MAX_BACKOFF_S``); after ``MAX_ATTEMPTS`` failed
restarts in a row the part is given up (``give_up``) until ``stagelog restart PART``.

Every crash, restart, give-up, lost-rows notice and cleaned region is a ``service_events`` row,
written through the spool (the supervisor never talks to the store), and appended to
``run/service_events.jsonl`` for ``stagelog status``. ``run/health.json`` says what is down;
``stagelog status`` reports not ready while anything is.

``stagelog restart collector|tritonserver|MODEL`` writes a request under ``run/restart/`` that
this loop carries out (or, without a running supervisor, the CLI does it in-process).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from logging_backend import config
from logging_backend.collector.triton_watch import MetricsSampler, write_table
from logging_backend.errors import LauncherError, StagelogError
from logging_backend.spool.schemas import SCHEMAS
from logging_backend.stack import launcher
from logging_backend.stack.service_state import (
    health_file,
    journal_file,
    requests_dir,
)
from logging_backend.stack.stages import (
    Stub,
    alive,
    probe_stages,
    reload_model,
    remove_regions,
    server_live,
    server_regions,
    stubs_of,
    success_counts,
)

LOG = logging.getLogger("stagelog.supervisor")

SUPERVISOR = "supervisor"
MODULE = "logging_backend.stack.supervisor"
PROBE_MS = config.PROBE_MS
HANG_MS = config.HANG_MS
TICK_S = 0.25
LIVE_EVERY_S = 1.0  # how often the server's liveness is asked
LIVE_TIMEOUT_S = 2.0  # one liveness call's deadline
HANG_MIN_FAILURES = 3  # a hang is this many failed checks in a row, spanning STAGELOG_HANG_MS
KILL_WAIT_S = 5.0
EXIT_WAIT_S = 2.0  # a dead child of ours: how long its exit status may take (_exit_status)
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 16.0
MAX_ATTEMPTS = 6
START_TIMEOUT_S = 90.0
JOURNAL_KEEP = 200
LOG_TAIL_LINES = 30

_SIGNAL_LINE = re.compile(r"Signal \((\d+)\) received")

SERVICE_EVENTS_SCHEMA = SCHEMAS["service_events"]


# --------------------------------------------------------------------------- files


def _atomic_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9 (``SIG<n>`` when unknown)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


# --------------------------------------------------------------------------- events


class EventLog:
    """Writes service events to the spool (for the store) and to the local journal."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.host = socket.gethostname()
        self.lock = threading.Lock()

    def record(
        self,
        component: str,
        event: str,
        *,
        model: str = "",
        pid: int | None = None,
        exit_code: int | None = None,
        sig: str = "",
        attempt: int = 0,
        delay_s: float = 0.0,
        requests: int = 0,
        detail: str = "",
        log_tail: str = "",
    ) -> dict[str, Any]:
        """Record one event; never raises (a full disk must not stop the supervisor)."""
        row = {
            "ts": datetime.now(timezone.utc),
            "host": self.host,
            "event_id": str(uuid.uuid4()),
            "component": component,
            "model": model,
            "event": event,
            "pid": int(pid or 0),
            "exit_code": exit_code,
            "signal": sig,
            "attempt": attempt,
            "delay_s": float(delay_s),
            "requests": int(requests),
            "detail": detail,
            "log_tail": log_tail,
        }
        LOG.warning(
            "%s %s%s pid=%s exit=%s signal=%s attempt=%d: %s",
            component, event, f" ({model})" if model else "", row["pid"], exit_code, sig or "-",
            attempt, detail,
        )
        with self.lock:
            try:
                write_table(
                    self.settings.spool_dir,
                    "service_events",
                    pa.Table.from_pylist([row], schema=SERVICE_EVENTS_SCHEMA),
                )
            except Exception:
                LOG.exception("cannot spool a service event")
            try:
                self._journal({**row, "ts": row["ts"].isoformat(), "log_tail": ""})
            except OSError:
                LOG.exception("cannot append to %s", journal_file(self.settings))
        return row

    def _journal(self, entry: dict[str, Any]) -> None:
        path = journal_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 2 * JOURNAL_KEEP:
            _atomic_json_lines(path, lines[-JOURNAL_KEEP:])


def _atomic_json_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- parts


@dataclass
class Part:
    """Restart bookkeeping of one supervised part (a process or a model)."""

    name: str
    attempts: int = 0
    next_try: float = 0.0
    given_up: bool = False
    starting_until: float = 0.0
    proc: subprocess.Popen | None = None
    last_pid: int | None = None
    down_since: float | None = None

    def backoff(self) -> float:
        """The delay before the next attempt (doubling, capped)."""
        return min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, self.attempts - 1))


class Supervisor:
    """Watches one stack (``run/stack.json`` of ``settings.home``) and restarts what died.

    Args:
        settings: The stack's settings (home, ports, ...).
        probe_s: Seconds between rounds of stage probes.
    """

    def __init__(self, settings: config.Settings, probe_s: float | None = None) -> None:
        self.settings = settings
        self.stack = self._read_stack()
        self.probe_s = probe_s if probe_s is not None else settings.probe_ms / 1000
        self.hang_s = settings.hang_ms / 1000
        self.next_live = 0.0
        self.silent_since: float | None = None  # first failed liveness check of this streak
        self.silent_checks = 0
        self.events = EventLog(settings)
        self.stop_event = threading.Event()
        self.parts: dict[str, Part] = {}
        self.down: dict[str, str] = {}
        self.stubs: dict[int, Stub] = {}
        self.regions: set[str] = set()  # stub regions the server was seen to map
        self.next_probe = 0.0
        self.watch_collector = self.stack.get("collector_pid") is not None
        for name in (launcher.TRITON, launcher.COLLECTOR):
            self.parts[name] = Part(name, last_pid=launcher.running_pid(settings, name))
        if self.parts[launcher.TRITON].last_pid:
            self._remember_stubs(self.parts[launcher.TRITON].last_pid)

    def _read_stack(self) -> dict[str, Any]:
        path = launcher.run_dir(self.settings) / "stack.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LauncherError(f"no stack to supervise in {self.settings.home}: {exc}") from exc

    # ------------------------------------------------------------------ loop

    def request_stop(self, *_: object) -> None:
        """Stop after the current step (signal handler)."""
        self.stop_event.set()

    def run(self) -> None:
        """Check, restart and probe until asked to stop."""
        LOG.info("supervising %s (probes every %.1f s)", self.settings.home, self.probe_s)
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:  # a bug here must not end supervision; logged in full
                LOG.exception("supervisor step failed")
            self.stop_event.wait(TICK_S)

    def step(self) -> None:
        """One round: restart requests, the processes, then (when due) the stages."""
        self._handle_requests()
        self._check_process(launcher.TRITON)
        self._check_hung()
        if self.watch_collector:
            self._check_process(launcher.COLLECTOR)
        now = time.monotonic()
        triton = self.parts[launcher.TRITON]
        if (
            now >= self.next_probe and triton.starting_until == 0 and triton.down_since is None
            and self.silent_since is None  # a silent server: the liveness checks decide
        ):
            self.next_probe = now + self.probe_s
            self._probe()
        self._write_health()

    # ------------------------------------------------------------------ hung server

    def _live(self) -> bool:
        """One liveness check of the server (a seam for tests)."""
        return server_live(self.settings.grpc_port, LIVE_TIMEOUT_S)

    def _check_hung(self) -> None:
        """Ask the running server whether it is live; kill and restart one that hangs."""
        part = self.parts[launcher.TRITON]
        now = time.monotonic()
        if part.starting_until or part.down_since is not None or part.last_pid is None:
            self.silent_since, self.silent_checks = None, 0
            return
        if now < self.next_live:
            return
        self.next_live = now + LIVE_EVERY_S
        if self._live():
            if self.silent_since is not None:
                LOG.info("tritonserver answers again after %.1f s",
                         time.monotonic() - self.silent_since)
            self.silent_since, self.silent_checks = None, 0
            return
        if self.silent_since is None:
            self.silent_since = now
        self.silent_checks += 1
        silent = time.monotonic() - self.silent_since
        if silent >= self.hang_s and self.silent_checks >= HANG_MIN_FAILURES:
            self._kill_hung(part, silent)

    def _kill_hung(self, part: Part, silent: float) -> None:
        """SIGKILL the hung server (its own group), record the crash, let the restart follow."""
        pid = part.last_pid
        checks = self.silent_checks
        self.silent_since, self.silent_checks = None, 0
        if pid is None or launcher.running_pid(self.settings, launcher.TRITON) != pid:
            return  # gone or replaced meanwhile: the process check sees to it
        tail = launcher.log_tail(launcher._log_file(self.settings, part.name), LOG_TAIL_LINES)
        how = kill_server(pid)
        if part.proc is not None and part.proc.pid == pid:
            try:
                part.proc.wait(KILL_WAIT_S)  # our child: reap it
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + KILL_WAIT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        now = time.monotonic()
        part.down_since = now
        part.next_try = now + part.backoff()
        self.events.record(
            part.name, "crash", pid=pid, sig="SIGKILL",
            detail=f"hung: {part.name} (pid {pid}) answered none of {checks} gRPC liveness "
            f"checks for {silent:.1f} s (limit {self.hang_s:.0f} s, {HANG_MS}); {how}",
            log_tail=tail,
        )
        self._after_server_death(pid)

    # ------------------------------------------------------------------ processes

    def _exit_status(self, part: Part) -> tuple[int | None, str]:
        """(exit code, signal name) of a part that died, as far as it can be known.

        A child of ours is waited for up to ``EXIT_WAIT_S``: a big process killed by a signal
        is no longer "running" (its command line is gone) a moment before it is a zombie, and
        a crash read in that moment would lose its signal (seen in the fault suite).
        """
        if part.proc is not None:
            try:
                code = part.proc.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                return (None, signal_name(-code)) if code < 0 else (code, "")
        tail = launcher.log_tail(launcher._log_file(self.settings, part.name), 200)
        found = _SIGNAL_LINE.findall(tail)
        return None, signal_name(int(found[-1])) if found else ""

    def _check_process(self, name: str) -> None:
        part = self.parts[name]
        pid = launcher.running_pid(self.settings, name)
        now = time.monotonic()
        if part.starting_until:
            self._check_starting(part, pid, now)
            return
        if pid is not None:
            part.last_pid = pid
            if part.down_since is not None:
                part.down_since = None
            return
        if part.down_since is None:
            code, sig = self._exit_status(part)
            part.down_since = now
            part.next_try = now + part.backoff()
            self.events.record(
                name, "crash", pid=part.last_pid, exit_code=code, sig=sig,
                detail=f"{name} (pid {part.last_pid}) is not running",
                log_tail=launcher.log_tail(launcher._log_file(self.settings, name),
                                           LOG_TAIL_LINES),
            )
            if name == launcher.TRITON:
                self._after_server_death(part.last_pid)
        if not part.given_up and now >= part.next_try:
            self._start_process(part)

    def _after_server_death(self, pid: int | None) -> None:
        """Kill the stubs a dead server leaves behind, remove their regions."""
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)  # the server's own group (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
        stubs = [s for s in self.stubs.values() if not alive(s.pid)]
        regions = {s.shm_region for s in self.stubs.values()} | self.regions
        time.sleep(0.2)
        removed = remove_regions(regions, [])
        if removed:
            self.events.record(
                "tritonserver", "shm_cleaned", pid=pid,
                detail=f"removed {len(removed)} /dev/shm regions of {len(stubs)} dead stubs",
            )
        self.stubs.clear()
        self.regions.clear()

    def _start_process(self, part: Part) -> None:
        part.attempts += 1
        delay = part.backoff()
        try:
            if part.name == launcher.TRITON:
                part.proc = self._spawn_triton()
            else:
                part.proc = self._spawn_collector()
        except (StagelogError, OSError) as exc:
            self._failed(part, f"cannot start {part.name}: {exc}", delay)
            return
        part.starting_until = time.monotonic() + START_TIMEOUT_S
        self.events.record(
            part.name, "restart", pid=part.proc.pid, attempt=part.attempts, delay_s=delay,
            detail=f"started {part.name} again (pid {part.proc.pid})",
        )

    def _check_starting(self, part: Part, pid: int | None, now: float) -> None:
        assert part.proc is not None
        if part.proc.poll() is not None:
            code, sig = self._exit_status(part)
            part.starting_until = 0.0
            self._failed(
                part, f"{part.name} exited while starting (code {code}, signal {sig or '-'})",
                part.backoff(), code=code, sig=sig,
            )
            return
        if self._started(part):
            took = START_TIMEOUT_S - (part.starting_until - now)
            part.starting_until = 0.0
            part.last_pid = part.proc.pid
            part.down_since = None
            self.events.record(
                part.name, "restarted", pid=part.proc.pid, attempt=part.attempts,
                detail=f"{part.name} ready again after {took:.1f} s",
            )
            part.attempts = 0
            self._update_stack(part)
            self.next_probe = 0.0
            self.next_live = 0.0
            return
        if now > part.starting_until:
            part.starting_until = 0.0
            try:
                part.proc.kill()
            except OSError:
                pass
            self._failed(part, f"{part.name} not ready within {START_TIMEOUT_S:.0f} s",
                         part.backoff())

    def _failed(
        self, part: Part, detail: str, delay: float, code: int | None = None, sig: str = ""
    ) -> None:
        tail = launcher.log_tail(launcher._log_file(self.settings, part.name), LOG_TAIL_LINES)
        if part.attempts >= MAX_ATTEMPTS:
            part.given_up = True
            self.events.record(part.name, "give_up", attempt=part.attempts, exit_code=code,
                               sig=sig, detail=f"{detail}; giving up after {part.attempts} "
                               "attempts (stagelog restart to try again)", log_tail=tail)
            return
        part.next_try = time.monotonic() + delay
        part.down_since = part.down_since or time.monotonic()
        self.events.record(part.name, "restart_failed", attempt=part.attempts, exit_code=code,
                           sig=sig, delay_s=delay, detail=detail, log_tail=tail)

    def _started(self, part: Part) -> bool:
        if part.name == launcher.TRITON:
            return launcher.grpc_ready(self.settings.grpc_port, launcher.DEFAULT_READY_MODEL)
        info = _collector_info(self.settings)
        return info is not None and int(info.get("pid", 0)) == part.proc.pid

    def _env(self) -> dict[str, str]:
        binary = Path(self.stack["tritonserver"])
        return launcher.stack_env(
            self.settings, binary, self.stack.get("triton_version", "unknown"),
            wheel_dir=launcher.wheel_triton_dir(),
        )

    def _spawn_triton(self) -> subprocess.Popen:
        binary = Path(self.stack["tritonserver"])
        backend_dir = self.settings.home / "backends"
        command = launcher.triton_command(
            self.settings, binary, Path(self.stack["model_repository"]), backend_dir,
            self.stack.get("extra_triton_args", []),
        )
        for port in (self.settings.grpc_port, self.settings.metrics_port):
            if not launcher.port_free(port):
                raise LauncherError(f"port {port} is still taken")
        return launcher._start(self.settings, launcher.TRITON, command, self._env())

    def _spawn_collector(self) -> subprocess.Popen:
        launcher.collector_file(self.settings).unlink(missing_ok=True)
        return launcher._start(
            self.settings, launcher.COLLECTOR, [sys.executable, "-m", launcher.COLLECTOR_MODULE],
            self._env(),
        )

    def _update_stack(self, part: Part) -> None:
        path = launcher.run_dir(self.settings) / "stack.json"
        try:
            stack = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if part.name == launcher.TRITON:
            stack["triton_pid"] = part.proc.pid
        else:
            stack["collector_pid"] = part.proc.pid
            info = _collector_info(self.settings) or {}
            stack["query_url"] = info.get("http_url", stack.get("query_url"))
        _atomic_json(path, stack)
        self.stack = stack

    # ------------------------------------------------------------------ stages

    def _remember_stubs(self, server_pid: int) -> None:
        for stub in stubs_of(server_pid):
            self.stubs[stub.pid] = stub
        self.regions |= server_regions(server_pid)

    def _probe(self) -> None:
        server_pid = self.parts[launcher.TRITON].last_pid
        if server_pid is None:
            return
        self._remember_stubs(server_pid)
        result = probe_stages(self.settings.grpc_port)
        if "tritonserver" in result.down:
            return  # the process check decides; a server that answers nothing is handled there
        now = time.monotonic()
        for model in list(self.down):
            if model not in result.down:
                part = self.parts.get(f"model:{model}")
                if part and part.attempts:
                    self.events.record("model", "restarted", model=model, attempt=part.attempts,
                                       detail=f"{model} answers probes again")
                    part.attempts = 0
                    part.down_since = None
                del self.down[model]
        for model, why in result.down.items():
            part = self.parts.setdefault(f"model:{model}", Part(f"model:{model}"))
            if model not in self.down:
                self.down[model] = why
                part.down_since = now
                part.next_try = now
                self._stage_died(model, why, server_pid)
            if not part.given_up and now >= part.next_try:
                self._reload(model, part)

    def _stage_died(self, model: str, why: str, server_pid: int) -> None:
        live = {s.pid for s in stubs_of(server_pid)}
        dead = [s for s in self.stubs.values() if s.model == model and s.pid not in live]
        counts = success_counts(self.settings.metrics_port)
        self.events.record(
            "model", "unhealthy", model=model, pid=dead[0].pid if dead else 0,
            detail=why[:2000],
            log_tail=launcher.log_tail(launcher._log_file(self.settings, launcher.TRITON),
                                       LOG_TAIL_LINES),
        )
        for stub in dead:
            # What the stub buffered since its last flush died with it: Triton counted the
            # requests it answered, stage_events holds the ones it logged (same pid). The view
            # stub_rows_lost (migration 0061) subtracts one from the other.
            self.events.record(
                "model", "rows_lost", model=model, pid=stub.pid,
                requests=counts.get((model, stub.version), 0),
                detail=f"stub {stub.instance} (pid {stub.pid}, version {stub.version}) died; "
                "the records it had not flushed yet are lost; requests = Triton's success "
                "count for this model version since its load",
            )

    def _reload(self, model: str, part: Part) -> None:
        part.attempts += 1
        delay = part.backoff()
        server_pid = self.parts[launcher.TRITON].last_pid or 0
        # Its dead stubs' regions: known from their command lines, or still mapped by the
        # server; the live stubs' regions (of every model) are kept by remove_regions.
        regions = {s.shm_region for s in self.stubs.values() if s.model == model}
        regions |= server_regions(server_pid)
        self.events.record("model", "restart", model=model, attempt=part.attempts,
                           delay_s=delay, detail=f"reloading {model} through model control")
        started = time.monotonic()
        # Reloading resets the counters of the model and of the ensembles using it: sample
        # them first, so that the failures of the dead stub reach triton_metrics.
        MetricsSampler(
            self.settings.spool_dir, f"http://127.0.0.1:{self.settings.metrics_port}/metrics",
            lambda: server_pid,
        ).step()
        try:
            reload_model(self.settings.grpc_port, model)
        except Exception as exc:
            if part.attempts >= MAX_ATTEMPTS:
                part.given_up = True
                self.events.record("model", "give_up", model=model, attempt=part.attempts,
                                   detail=f"reload failed: {exc}")
            else:
                part.next_try = time.monotonic() + delay
                self.events.record("model", "restart_failed", model=model,
                                   attempt=part.attempts, delay_s=delay,
                                   detail=f"reload failed: {exc}")
            return
        part.next_try = time.monotonic() + delay
        self.next_probe = 0.0  # confirm with a probe at once
        live = stubs_of(server_pid)
        for stub in [s for s in self.stubs.values() if s.model == model]:
            if not alive(stub.pid):
                del self.stubs[stub.pid]
        for stub in live:
            self.stubs[stub.pid] = stub
        removed = remove_regions(regions, live)
        if removed:
            self.events.record("model", "shm_cleaned", model=model,
                               detail=f"removed /dev/shm/{', /dev/shm/'.join(removed)}")
        LOG.info("reloaded %s in %.1f s", model, time.monotonic() - started)

    # ------------------------------------------------------------------ requests, health

    def restart(self, part_name: str) -> str:
        """Restart one part now (``collector``, ``tritonserver`` or a model); return a message."""
        name = {"triton": launcher.TRITON, "server": launcher.TRITON}.get(part_name, part_name)
        if name in (launcher.TRITON, launcher.COLLECTOR):
            part = self.parts[name]
            old = launcher.running_pid(self.settings, name)
            if old is not None:
                part.proc = None
                stopped = launcher._stop(
                    self.settings, name,
                    launcher.TRITON_STOP_TIMEOUT_S if name == launcher.TRITON
                    else launcher.COLLECTOR_STOP_TIMEOUT_S,
                )
                if name == launcher.TRITON:
                    self._after_server_death(stopped)
            part.given_up, part.attempts, part.down_since = False, 0, time.monotonic()
            self.events.record(name, "restart_requested", pid=old,
                               detail=f"stagelog restart {part_name}")
            self._start_process(part)
            deadline = time.monotonic() + START_TIMEOUT_S
            while part.starting_until and time.monotonic() < deadline:
                self._check_starting(part, None, time.monotonic())
                time.sleep(0.1)
            if part.starting_until or part.down_since is not None:
                return f"{name} did not come back (see stagelog status)"
            return f"{name} restarted (pid {part.last_pid})"
        part = self.parts.setdefault(f"model:{name}", Part(f"model:{name}"))
        part.given_up, part.attempts = False, 0
        self.events.record("model", "restart_requested", model=name,
                           detail=f"stagelog restart {part_name}")
        self._reload(name, part)
        result = probe_stages(self.settings.grpc_port)
        if name in result.down:
            return f"{name} reloaded but still down: {result.down[name][:300]}"
        self.down.pop(name, None)
        return f"{name} reloaded"

    def _handle_requests(self) -> None:
        folder = requests_dir(self.settings)
        if not folder.is_dir():
            return
        for request in sorted(folder.glob("*.request")):
            try:
                part_name = json.loads(request.read_text(encoding="utf-8"))["part"]
            except (OSError, ValueError, KeyError):
                request.unlink(missing_ok=True)
                continue
            request.unlink(missing_ok=True)
            try:
                message = self.restart(str(part_name))
                ok = "did not" not in message and "still down" not in message
            except Exception as exc:
                LOG.exception("restart of %s failed", part_name)
                message, ok = f"restart of {part_name} failed: {exc}", False
            _atomic_json(request.with_suffix(".done"), {"ok": ok, "message": message})

    def _write_health(self) -> None:
        down = dict(self.down)
        for name, part in self.parts.items():
            if name.startswith("model:"):
                continue
            if part.down_since is not None or part.starting_until:
                down[name] = "restarting" if not part.given_up else "given up"
        if self.silent_since is not None and launcher.TRITON not in down:
            down[launcher.TRITON] = (
                f"answers no liveness check for {time.monotonic() - self.silent_since:.0f} s"
            )
        _atomic_json(health_file(self.settings), {
            "ts": time.time(), "pid": os.getpid(), "down": down,
            "given_up": sorted(n for n, p in self.parts.items() if p.given_up),
        })


def kill_server(pid: int) -> str:
    """SIGKILL ``pid`` and, when it leads its own process group, that group; say what was done.

    The launcher and the supervisor start tritonserver with ``start_new_session``, so its group
    is itself and its stubs. A pid in someone else's group is killed alone.
    """
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return "it had exited already"
    try:
        if group == pid:
            os.killpg(pid, signal.SIGKILL)
            return f"killed its process group {pid} with SIGKILL"
        os.kill(pid, signal.SIGKILL)
        return f"killed pid {pid} with SIGKILL"
    except ProcessLookupError:
        return "it had exited already"


def _collector_info(settings: config.Settings) -> dict[str, Any] | None:
    try:
        info = json.loads(launcher.collector_file(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def request_restart(settings: config.Settings, part: str, timeout: float = 150.0) -> str:
    """Restart ``part`` through the running supervisor, or here when none runs.

    Raises:
        LauncherError: When nothing runs in this home, or the restart failed.
    """
    if launcher.running_pid(settings, SUPERVISOR) is None:
        if launcher.running_pid(settings, launcher.TRITON) is None and part != "collector":
            raise LauncherError(f"no stack runs in {settings.home}: use stagelog up")
        message = Supervisor(settings).restart(part)
        if "did not" in message or "still down" in message:
            raise LauncherError(message)
        return message
    folder = requests_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    _atomic_json(folder / f"{token}.request", {"part": part})
    done = folder / f"{token}.done"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        done.unlink(missing_ok=True)
        if not answer.get("ok"):
            raise LauncherError(answer.get("message", "restart failed"))
        return str(answer.get("message", ""))
    raise LauncherError(f"the supervisor did not restart {part} within {timeout:.0f} s")


def main() -> int:
    """Supervise the stack of ``$STAGELOG_HOME`` until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s pid=%(process)d: %(message)s",
        stream=sys.stderr,
    )
    try:
        supervisor = Supervisor(launcher.settings_from_stack())
    except StagelogError as exc:
        LOG.error("%s", exc)
        return 2
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
