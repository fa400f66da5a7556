"""The collector: one process per host that ships spool segments into ClickHouse.

``python -m logging_backend.collector`` (started by ``stagelog up``). Settings come from the
environment through ``logging_backend.config``. At start it opens the store and applies pending
migrations (and recreates missing objects), starts the query door on 127.0.0.1 (ClickHouse's
HTTP interface over the embedded store, read-only, with the home's reader credentials:
:mod:`logging_backend.collector.endpoint`; chDB can be opened by one process only, so every
client reads the store through it while the collector runs) with the collector's Prometheus
metrics at ``/metrics``, then writes ``$STAGELOG_HOME/run/collector.json`` = ``{"pid", "dsn",
"http_url", "user", "password_file", "metrics_url"}`` (no password). It polls the spool, ships
large batches per table with idempotent tokens (:mod:`logging_backend.collector.shipper`),
retries transient store failures with capped, jittered backoff, enforces the spool's disk
budget, and answers the admin requests of ``stagelog migrate``/``note``/``baseline load`` in
``run/admin``. SIGTERM or SIGINT: ship everything that is left (for at most
``DRAIN_TIMEOUT_S``), then exit 0.

Every file the collector writes is private (umask 077).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend import config, store
from logging_backend.collector.budget import Budget, Reserve
from logging_backend.collector.endpoint import Door, Server, serve
from logging_backend.collector.health import CountingClient, Health, InsertCounts
from logging_backend.collector.sampler import SamplerThread
from logging_backend.collector.shipper import Shipper
from logging_backend.errors import SpoolFull, StagelogError, StoreError, StoreUnavailable
from logging_backend.spool.ticks import until_tick
from logging_backend.store import access
from logging_backend.store.sessions import ReaderLimits, Sessions

log = logging.getLogger("stagelog.collector")

# The collector polls the spool STAGELOG_COLLECT_OFFSET_MS after each tick of the stages' flush
# clock (multiples of the period on the wall clock, spool.ticks.until_tick): a flush made at the
# tick is on disk by then, so it waits for this poll and not for the next one.
HEALTH_ROW_S = 10.0  # how often the collector writes a stagelog.collector_health row
SCHEMA_CHECK_S = 30.0  # how often the collector checks that every schema object exists
DRAIN_TIMEOUT_S = 45.0  # below the launcher's 60 s stop timeout
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


def info_file(home: Path) -> Path:
    """``$STAGELOG_HOME/run/collector.json``: where a running collector says how to reach it."""
    return home / "run" / "collector.json"


def admin_dir(home: Path) -> Path:
    """``$STAGELOG_HOME/run/admin``: requests of the admin commands, answered by the collector.

    Only the home's owner can write there (the home is 0700): ``stagelog migrate`` and the
    writes of ``stagelog note``/``baseline load`` reach a store the collector holds this way,
    never through the read-only query door.
    """
    return home / "run" / "admin"


# The only writes the admin channel runs: notes, feature baselines, replay results and alert
# transitions of the CLI (see stack.query.execute).
ADMIN_WRITE = re.compile(
    r"^\s*INSERT\s+INTO\s+stagelog\.(annotations|feature_baseline|replays|alerts)\s*\(", re.I
)


def read_info(home: Path) -> dict[str, Any] | None:
    """The running collector's info, or None when no live collector owns ``home``."""
    path = info_file(home)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (grows with each failure)."""
        self.failures += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 16)))

    def reset(self) -> None:
        """Forget failures after a success."""
        self.failures = 0


class Collector:
    """Ships one spool and answers queries for one store.

    Args:
        settings: resolved settings (home, dsn, spool budget).
        interval_s: spool poll period.
    """

    def __init__(self, settings: config.Settings, interval_s: float | None = None) -> None:
        self.settings = settings
        self.destination = store.redact(settings.dsn)
        self.interval_s = (
            interval_s
            if interval_s is not None
            else settings.collect_interval_ms / 1000
        )
        self.offset_s = settings.collect_offset_ms / 1000
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.client: Client | None = None
        self.shipper: Shipper | None = None
        self.server: Server | None = None
        self.door: Door | None = None
        self.counts = InsertCounts()
        self.health = Health(
            settings.spool_dir,
            self.counts,
            lambda: self.shipper.stats.as_dict() if self.shipper else None,
            lambda: (self.door.queries, self.door.refused) if self.door else (0, 0),
        )
        self.gpu_sampler: Any = None
        self.triton_samplers: list[Any] = []

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self, *_: object) -> None:
        """Ask the loop to drain and stop (signal handler)."""
        self.stop_event.set()

    def serve_admin_requests(self) -> int:
        """Answer the admin requests waiting in run/admin (migrate, a note or baseline write).

        Returns:
            How many were answered.
        """
        directory = admin_dir(self.settings.home)
        try:
            names = sorted(p.name for p in directory.glob("*.request.json"))
        except OSError:
            return 0
        for name in names:
            path = directory / name
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
                answer = self._admin(request)
            except (OSError, ValueError) as exc:
                answer = {"error": f"unreadable request: {exc}"}
            path.unlink(missing_ok=True)
            out = directory / name.replace(".request.json", ".answer.json")
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(answer), encoding="utf-8")
            os.rename(tmp, out)
        return len(names)

    def _write_health(self) -> None:
        """One stagelog.collector_health row (the dashboard's view of /metrics)."""
        assert self.client is not None
        columns, values = self.health.row(socket.gethostname(), os.getpid())
        try:
            with self.lock:
                self.client.insert("stagelog.collector_health", [values], column_names=columns,
                                   settings={"async_insert": 0})
        except (StagelogError, ClickHouseError, OSError) as exc:
            log.debug("health row not written to %s: %s", self.destination, exc)

    def _check_schema(self) -> None:
        """Recreate schema objects someone dropped (their segments would be refused)."""
        assert self.client is not None
        try:
            with self.lock:
                recreated = store.repair(self.client)
        except (StagelogError, ClickHouseError) as exc:
            log.warning("schema check of %s failed: %s", self.destination, exc)
            return
        if recreated:
            log.warning("recreated missing objects in %s: %s", self.destination,
                        ", ".join(recreated))

    def _admin(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        kind = request.get("kind")
        try:
            with self.lock:
                if kind == "migrate":
                    applied = store.migrate(self.client)
                    recreated = store.repair(self.client)
                    log.info("migrate: applied %s, recreated %s", applied or "nothing",
                             recreated or "nothing")
                    return {"applied": applied, "recreated": recreated}
                if kind == "write" and ADMIN_WRITE.match(str(request.get("sql", ""))):
                    self.client.command(request["sql"], parameters=request.get("params") or None)
                    return {"ok": True}
        except (StagelogError, ClickHouseError) as exc:
            return {"error": str(exc)}
        return {"error": f"not an admin request: {str(request)[:200]}"}

    def open(self) -> None:
        """Connect (retrying while the store is unreachable), migrate, start the endpoint."""
        backoff = Backoff()
        while True:
            try:
                self.client = store.connect(self.settings.dsn)
                with self.lock:
                    applied = store.migrate(self.client)
                    recreated = store.repair(self.client)
                break
            except (StoreError, ClickHouseError) as exc:
                if not store.is_transient(exc.__cause__ or exc) or self.stop_event.is_set():
                    raise
                delay = backoff.next_delay()
                log.warning("store %s unavailable at start (%s); retrying in %.1fs",
                            self.destination, exc, delay)
                if self.stop_event.wait(delay):
                    raise
        if applied:
            log.info("applied migrations to %s: %s", self.destination, ", ".join(applied))
        if recreated:
            log.warning("recreated missing objects in %s: %s", self.destination,
                        ", ".join(recreated))
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        budget = Budget(
            self.settings.spool_dir,
            budget_bytes=self.settings.spool_budget_mb << 20,
            min_free_bytes=self.settings.spool_min_free_mb << 20,
        )
        self.shipper = Shipper(
            CountingClient(self.client, self.counts),
            self.settings.spool_dir,
            budget=budget,
            lock=self.lock,
            destination=self.destination,
            reserve=Reserve(self.settings.spool_dir),
        )
        # GPU utilisation, memory, power, temperature -> system_samples about once a second,
        # through the spool like every other row (a no-op, logged once, without a GPU/NVML).
        self.gpu_sampler = SamplerThread(self.settings.spool_dir).start()
        # Triton's own counters and its warnings/errors -> triton_metrics, server_logs.
        from logging_backend.collector.triton_watch import start_samplers  # noqa: PLC0415

        self.triton_samplers = start_samplers(
            self.settings.home, self.settings.spool_dir, self.settings.metrics_port,
            self.settings.triton_metrics_ms,
        )
        info: dict[str, Any] = {"pid": os.getpid(), "dsn": self.destination}
        data_path = store.chdb_path(self.settings.dsn)
        credentials = access.ensure(self.settings)
        sessions = Sessions(data_path) if data_path else None
        self.door = Door(
            sessions,  # None with a server DSN: the door then serves /metrics only
            credentials,
            limits=ReaderLimits(
                max_execution_time_s=self.settings.query_timeout_s,
                max_result_bytes=self.settings.query_max_result_mb << 20,
                max_memory_bytes=self.settings.query_max_memory_mb << 20,
            ),
            metrics=self.health,
        )
        self.server = serve(self.door, self.settings.query_port)
        info["metrics_url"] = f"{self.server.url}/metrics"
        if data_path:
            secret = access.password_file(self.settings)
            info.update(
                http_url=self.server.url,
                user=credentials.user,
                # None: the password comes from STAGELOG_QUERY_PASSWORD, not from the file
                password_file=str(secret) if secret.exists() else None,
            )
        path = info_file(self.settings.home)
        admin_dir(self.settings.home).mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.rename(tmp, path)
        log.info("collector ready: spool %s -> %s, ClickHouse HTTP interface at %s (user %s)",
                 self.settings.spool_dir, self.destination, self.server.url, credentials.user)

    @property
    def http_url(self) -> str:
        """Base URL of the query door (ClickHouse's HTTP interface)."""
        assert self.server is not None
        return self.server.url

    def run(self) -> None:
        """Poll and ship until asked to stop, then drain."""
        assert self.shipper is not None
        backoff = Backoff()
        schema_checked = health_written = time.monotonic()
        while not self.stop_event.is_set():
            self.serve_admin_requests()
            if time.monotonic() - health_written > HEALTH_ROW_S:
                health_written = time.monotonic()
                self._write_health()
            if time.monotonic() - schema_checked > SCHEMA_CHECK_S:
                schema_checked = time.monotonic()
                self._check_schema()
            try:
                self.shipper.enforce_budget()
                self.shipper.ship_all()
                backoff.reset()
                # a period, not a pause: a poll every interval_s however long shipping took
                # (issue 11: freshness), just after the stages' flush tick, and never more than
                # one insert per table per period
                delay = until_tick(self.interval_s, min(self.offset_s, self.interval_s / 4))
            except (StoreUnavailable, SpoolFull) as exc:
                delay = backoff.next_delay()
                log.warning("%s; retrying in %.1fs", exc, delay)
            except Exception:  # a bug must not stop shipping for good; it is logged in full
                delay = backoff.next_delay()
                log.exception("shipping to %s failed; retrying in %.1fs", self.destination, delay)
            self.stop_event.wait(delay)
        if self.gpu_sampler is not None:
            self.gpu_sampler.stop()  # its last rows go out with the drain
        from logging_backend.collector.triton_watch import stop_samplers  # noqa: PLC0415

        stop_samplers(self.triton_samplers)
        self.drain()

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Ship everything left in the spool, retrying for at most ``timeout_s``.

        Returns:
            True when the spool is empty.
        """
        assert self.shipper is not None
        deadline = time.monotonic() + timeout_s
        backoff = Backoff(cap=5.0)
        while True:
            try:
                self.shipper.enforce_budget()
                shipped = self.shipper.ship_all()
                if self.shipper.pending() and time.monotonic() < deadline:
                    if not shipped:  # e.g. drop counts waiting for disk space: do not spin
                        time.sleep(min(self.interval_s, 0.5))
                    continue  # written while shipping (e.g. drop records): ship those too
                log.info("drained the spool into %s", self.destination)
                return True
            except (StoreUnavailable, SpoolFull) as exc:
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    log.error("stopping with %d segments left in the spool (%s unavailable: %s)",
                              self.shipper.pending(), self.destination, exc)
                    return False
                log.warning("%s; retrying in %.1fs while draining", exc, delay)
                time.sleep(delay)

    def close(self) -> None:
        """Stop the endpoint and remove collector.json."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        info_file(self.settings.home).unlink(missing_ok=True)
        store.close_all()

    # ------------------------------------------------------------------ health

    def query(self, sql: str, params: dict[str, Any] | None, fmt: str) -> bytes:
        """Run one statement on the collector's own client (tasks in this process: alerts).

        Serialised with shipping; never reachable from outside the process (the query door
        has its own read-only sessions).
        """
        assert self.client is not None
        with self.lock:
            return store.run_query(self.client, sql, params, store.clickhouse_format(fmt))

    def status(self) -> dict[str, Any]:
        """The collector's figures (what ``/metrics`` serves, as one dict)."""
        return {"pid": os.getpid(), "dsn": self.destination, **self.health.snapshot()}

