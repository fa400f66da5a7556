"""The collector: one process per host that ships spool segments into ClickHouse.

``python -m logging_backend.collector`` (started by ``stagelog up``). Settings come from the
environment through ``logging_backend.config``. At start it opens the store and applies pending
migrations, starts a small query endpoint on 127.0.0.1 (chDB can be opened by one process only,
so the collector answers ``stagelog sql`` while it runs), then writes
``$STAGELOG_HOME/run/collector.json`` = ``{"pid", "query_url", "dsn"}``. It polls the spool, ships
large batches per table with idempotent tokens (:mod:`logging_backend.collector.shipper`),
retries transient store failures with capped, jittered backoff, and enforces the spool's disk
budget. SIGTERM or SIGINT: ship everything that is left (for at most ``DRAIN_TIMEOUT_S``),
then exit 0.

Query endpoint (JSON over HTTP, 127.0.0.1 only):
    ``GET /health`` -> ``{"ok", "pid", "dsn", "pending_segments", "stats"}``
    ``POST /query`` ``{"query", "params", "format"}`` -> the result in that ClickHouse format,
    or status 400 with ``{"error": message}``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from logging_backend import config, store
from logging_backend.collector.budget import Budget, Reserve
from logging_backend.collector.endpoint import make_handler
from logging_backend.collector.sampler import SamplerThread
from logging_backend.collector.shipper import Shipper
from logging_backend.errors import SpoolFull, StoreError, StoreUnavailable

log = logging.getLogger("stagelog.collector")

DRAIN_TIMEOUT_S = 45.0  # below the launcher's 60 s stop timeout
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


def info_file(home: Path) -> Path:
    """``$STAGELOG_HOME/run/collector.json``: where a running collector says how to reach it."""
    return home / "run" / "collector.json"


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
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.client: Client | None = None
        self.shipper: Shipper | None = None
        self.server: ThreadingHTTPServer | None = None
        self.gpu_sampler: Any = None
        self.triton_samplers: list[Any] = []

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self, *_: object) -> None:
        """Ask the loop to drain and stop (signal handler)."""
        self.stop_event.set()

    def open(self) -> None:
        """Connect (retrying while the store is unreachable), migrate, start the endpoint."""
        backoff = Backoff()
        while True:
            try:
                self.client = store.connect(self.settings.dsn)
                with self.lock:
                    applied = store.migrate(self.client)
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
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        budget = Budget(
            self.settings.spool_dir,
            budget_bytes=self.settings.spool_budget_mb << 20,
            min_free_bytes=self.settings.spool_min_free_mb << 20,
        )
        self.shipper = Shipper(
            self.client,
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
            self.settings.home, self.settings.spool_dir, self.settings.metrics_port
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, name="stagelog-query", daemon=True
        ).start()
        path = info_file(self.settings.home)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            json.dumps(
                {"pid": os.getpid(), "query_url": self.query_url, "dsn": self.destination}
            ),
            encoding="utf-8",
        )
        os.rename(tmp, path)
        log.info("collector ready: spool %s -> %s, queries at %s",
                 self.settings.spool_dir, self.destination, self.query_url)

    @property
    def query_url(self) -> str:
        """Base URL of the query endpoint."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def run(self) -> None:
        """Poll and ship until asked to stop, then drain."""
        assert self.shipper is not None
        backoff = Backoff()
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.shipper.enforce_budget()
                self.shipper.ship_all()
                backoff.reset()
                # a period, not a pause: a poll every interval_s however long shipping took
                # (issue 11: freshness), and never more than one insert per table per period
                delay = max(0.0, self.interval_s - (time.monotonic() - started))
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

    # ------------------------------------------------------------------ queries

    def health(self) -> dict[str, Any]:
        """What /health answers."""
        shipper = self.shipper
        return {
            "ok": True,
            "pid": os.getpid(),
            "dsn": self.destination,
            "pending_segments": shipper.pending() if shipper else None,
            "stats": shipper.stats.as_dict() if shipper else None,
        }

    def query(self, sql: str, params: dict[str, Any] | None, fmt: str) -> bytes:
        """Run one statement for the endpoint (serialised with shipping)."""
        assert self.client is not None
        with self.lock:
            return store.run_query(self.client, sql, params, store.clickhouse_format(fmt))
