"""Triton's own view of failures, into the store: its metrics endpoint and its log.

Two samplers run in the collector, one thread each, and write spool segments like every stage
does (the collector ships them with the rest):

- `MetricsSampler` reads Triton's Prometheus endpoint (``127.0.0.1:$STAGELOG_METRICS_PORT``)
  every ``STAGELOG_TRITON_METRICS_MS`` (default 5000) and keeps the ``nv_inference_*`` series
  (request success and failure by model and reason, request / execution / inference counts,
  queue, compute and request durations, pending requests) as ``triton_metrics`` rows. A
  request a dead stub fails is counted there (2.51 counts no failure for a request it refuses
  at input validation: those come from ``refusals.log``, below).
- `LogTailer` follows ``$STAGELOG_HOME/logs/tritonserver.log`` (stdout and stderr of the
  server and its stubs) and keeps warnings, errors and fatal lines, with their continuation
  lines (a traceback), as ``server_logs`` rows. Its read position is kept in
  ``run/server_log.offset`` so that a restarted collector neither skips nor repeats lines; a
  new log file (the launcher rotates it at each server start) is read from its start.
- `RefusalTailer` (a `LogTailer`) follows ``logs/refusals.log``: one line per request Triton
  refused before a stage ran (written by ``logging_backend/stack/refusal_log.c``, preloaded
  into tritonserver), parsed by `parse_refusal_lines` into ``server_logs`` rows of source
  ``refusal`` with the model, the request id and Triton's error message (view
  ``refused_requests``).

All three are no-ops that log once when their source is absent (the server not up yet: they keep
trying).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from logging_backend.spool import layout
from logging_backend.spool.schemas import SCHEMAS

LOG = logging.getLogger("stagelog.collector.triton")

DEFAULT_METRICS_MS = 5000
KEEP_PREFIXES = ("nv_inference_",)
LOG_POLL_S = 0.5
MAX_MESSAGE_CHARS = 16_000
MAX_CONTINUATION_LINES = 60
REFUSAL_LOG = "refusals.log"  # in $STAGELOG_HOME/logs, written by stack/refusal_log.c

TRITON_METRICS_SCHEMA = SCHEMAS["triton_metrics"]

SERVER_LOGS_SCHEMA = SCHEMAS["server_logs"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def write_table(spool_dir: Path, table: str, data: pa.Table) -> None:
    """Write one spool segment holding ``table`` (through the spool layout's writer)."""
    layout.write_segment(spool_dir, {table: data})


def _now() -> datetime:
    return datetime.now(timezone.utc)


Sample = tuple[str, dict, float]


def parse_prometheus(text: str, keep: Iterable[str] = KEEP_PREFIXES) -> list[Sample]:
    """Parse Prometheus text exposition into ``(metric, labels, value)`` (kept prefixes only)."""
    prefixes = tuple(keep)
    out: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#") or not line.startswith(prefixes):
            continue
        match = _SAMPLE.match(line.strip())
        if not match:
            continue
        name, _, body, raw_value = match.group(1, 2, 3, 4)
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = {k: v.encode().decode("unicode_escape") for k, v in _LABEL.findall(body or "")}
        out.append((name, labels, value))
    return out


def metrics_rows(
    samples: list[Sample], server_pid: int, host: str, ts: datetime
) -> pa.Table:
    """``triton_metrics`` rows of one scrape."""
    rows = [
        {
            "ts": ts,
            "host": host,
            "server_pid": server_pid,
            "metric": name,
            "model": labels.get("model", ""),
            "version": labels.get("version", ""),
            "reason": labels.get("reason", ""),
            "labels": list(labels.items()),
            "value": value,
        }
        for name, labels, value in samples
    ]
    return pa.Table.from_pylist(rows, schema=TRITON_METRICS_SCHEMA)


class _Worker:
    """A named daemon thread that calls ``step`` every ``interval_s`` until stopped."""

    name = "stagelog-triton"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.rows_written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> _Worker:
        """Start the thread (returns at once)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after one last step (its rows go out with the collector's drain)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def step(self) -> None:  # pragma: no cover - overridden
        """One unit of work."""

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._safe_step()
        self._safe_step()

    def _safe_step(self) -> None:
        try:
            self.step()
        except Exception:  # a bug here must not stop the collector; logged in full
            LOG.exception("%s step failed", self.name)


class MetricsSampler(_Worker):
    """Scrapes Triton's metrics endpoint into ``triton_metrics`` segments.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        url: The metrics URL (``http://127.0.0.1:<metrics port>/metrics``).
        server_pid: Returns the pid of the running tritonserver (0 when unknown).
        interval_s: Seconds between scrapes.
    """

    name = "stagelog-triton-metrics"

    def __init__(
        self,
        spool_dir: Path,
        url: str,
        server_pid: Callable[[], int] = lambda: 0,
        interval_s: float = DEFAULT_METRICS_MS / 1000,
    ) -> None:
        super().__init__(interval_s)
        self.spool_dir = Path(spool_dir)
        self.url = url
        self.server_pid = server_pid
        self.host = socket.gethostname()
        self._warned = False

    def step(self) -> None:
        """Scrape once and write the kept series."""
        try:
            with urllib.request.urlopen(self.url, timeout=2.0) as response:  # noqa: S310
                text = response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            if not self._warned:
                LOG.info("Triton metrics at %s not reachable yet (%s); retrying", self.url, exc)
                self._warned = True
            return
        self._warned = False
        samples = parse_prometheus(text)
        if samples:
            write_table(
                self.spool_dir,
                "triton_metrics",
                metrics_rows(samples, self.server_pid(), self.host, _now()),
            )
            self.rows_written += len(samples)


# --------------------------------------------------------------------------- the log

# Triton's glog prefix: E1201 09:12:33.123456 4242 file.cc:123] message
_GLOG = re.compile(r"^([IWEF])(\d{4}) (\d\d:\d\d:\d\d\.\d+)\s+(\d+) ([^\]]+)\] ?(.*)$")
_LEVELS = {"W": "warning", "E": "error", "F": "fatal"}
# Lines without a prefix that still tell of a crash (Triton's signal handler, the stub).
_CRASH = re.compile(r"Signal \(\d+\) received|Segmentation fault|core dumped|Traceback|Killed")
_MODEL = re.compile(
    r"(?:Stub process '([A-Za-z0-9_.-]+?)_\d+_\d+'|model '([A-Za-z0-9_.-]+)'|"
    r"failed to load '([A-Za-z0-9_.-]+)')"
)


# Triton prefixes what it says about one request with "[request id: <id>] " (<id_unknown>: none).
_REQUEST_ID = re.compile(r"\[request id: ([^\]]*)\]")
_REQUEST_PREFIX = re.compile(r"^\[request id: [^\]]*\]? ?")
# The request-id rule of riskpipe.limits (the collector imports no workload code).
_VALID_ID = re.compile(r"[A-Za-z0-9_.:/+=@-]{1,128}")
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|.)")
_UNESCAPE = {"t": "\t", "n": "\n", "\\": "\\"}


def request_id_of(raw: str) -> str:
    """A request id fit to store: as sent when it follows the rule, else ``invalid-<digest>``.

    ``''`` and Triton's ``<id_unknown>`` mean none. The digest is the one `pipeline` gives a
    refused id (sha256, 16 hex digits), of what reached the log (at most 200 bytes of it).
    """
    if raw in ("", "<id_unknown>"):
        return ""
    if _VALID_ID.fullmatch(raw):
        return raw
    return "invalid-" + hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def model_named(message: str) -> str:
    """The model a log message is about, or ''."""
    match = _MODEL.search(message)
    if not match:
        return ""
    return next(g for g in match.groups() if g)


def parse_log_lines(
    lines: list[tuple[int, str]], year: int, log_file: str, host: str
) -> list[dict[str, Any]]:
    """``server_logs`` rows from ``(offset, line)`` pairs: W/E/F lines with continuations.

    A line without a glog prefix continues the entry before it (a traceback, a message over
    several lines); a continuation of an info line is dropped with it, unless it tells of a
    crash, which becomes an entry of its own (level ``fatal``).
    """
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    extra = 0
    for offset, line in lines:
        match = _GLOG.match(line)
        if match:
            level, mmdd, clock, pid, location, message = match.groups()
            current, extra = None, 0
            if level not in _LEVELS:
                continue
            try:
                ts = datetime.strptime(f"{year}{mmdd} {clock[:15]}", "%Y%m%d %H:%M:%S.%f")
                ts = ts.replace(tzinfo=timezone.utc)
            except ValueError:
                ts = _now()
            if len(message) >= 2 and message[0] == message[-1] == '"':
                message = message[1:-1].replace('\\"', '"')  # 2.51 quotes each message
            current = {
                "ts": ts,
                "host": host,
                "source": "tritonserver",
                "level": _LEVELS[level],
                "pid": int(pid),
                "location": location.strip(),
                "model": model_named(message),
                "request_id": request_id_of(found.group(1))
                if (found := _REQUEST_ID.search(message)) else "",
                "message": message,
                "log_file": log_file,
                "log_offset": offset,
            }
            rows.append(current)
        elif current is not None:
            if extra < MAX_CONTINUATION_LINES and len(current["message"]) < MAX_MESSAGE_CHARS:
                current["message"] += "\n" + line
                if not current["model"]:
                    current["model"] = model_named(line)
            extra += 1
        elif _CRASH.search(line):
            current, extra = (
                {
                    "ts": _now(),
                    "host": host,
                    "source": "tritonserver",
                    "level": "fatal" if "Traceback" not in line else "error",
                    "pid": 0,
                    "location": "",
                    "model": model_named(line),
                    "request_id": "",
                    "message": line,
                    "log_file": log_file,
                    "log_offset": offset,
                },
                0,
            )
            rows.append(current)
    for row in rows:
        row["message"] = row["message"][:MAX_MESSAGE_CHARS]
    return rows


def _unescape(field: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 3 else _UNESCAPE.get(code, code)

    return _ESCAPE.sub(one, field)


def parse_refusal_lines(
    lines: list[tuple[int, str]], year: int, log_file: str, host: str
) -> list[dict[str, Any]]:
    """``server_logs`` rows (source ``refusal``) from the lines of ``refusals.log``.

    A line is ``E<mmdd> <time> <pid> refusal] model<TAB>version<TAB>id<TAB>code<TAB>message``
    with tab, newline, backslash and control bytes escaped (``refusal_log.c``). The message is
    Triton's, without its ``[request id: ...]`` prefix (the id has its column); a version other
    than -1 (latest) is named in it. A line of another shape is kept whole as the message.
    """
    rows: list[dict[str, Any]] = []
    for offset, line in lines:
        match = _GLOG.match(line)
        if not match:
            continue
        _, mmdd, clock, pid, location, body = match.groups()
        try:
            ts = datetime.strptime(f"{year}{mmdd} {clock[:15]}", "%Y%m%d %H:%M:%S.%f")
            ts = ts.replace(tzinfo=timezone.utc)
        except ValueError:
            ts = _now()
        fields = body.split("\t")
        if len(fields) == 5:
            model, version, raw_id, code, text = (_unescape(f) for f in fields)
            text = _REQUEST_PREFIX.sub("", text)
            if version not in ("", "-1"):
                text = f"version {version}: {text}"
            message = f"{code}: {text}" if code else text
        else:
            model, raw_id, message = model_named(body), "", _unescape(body)
        rows.append(
            {
                "ts": ts,
                "host": host,
                "source": "refusal",
                "level": "error",
                "pid": int(pid),
                "location": location.strip(),
                "model": model,
                "request_id": request_id_of(raw_id),
                "message": message[:MAX_MESSAGE_CHARS],
                "log_file": log_file,
                "log_offset": offset,
            }
        )
    return rows


Parser = Callable[[list[tuple[int, str]], int, str, str], list[dict[str, Any]]]


class LogTailer(_Worker):
    """Follows a log file of the server into ``server_logs`` segments.

    Args:
        spool_dir: ``$STAGELOG_HOME/spool``.
        log_path: ``$STAGELOG_HOME/logs/tritonserver.log`` (or ``refusals.log``).
        state_path: Where the read position is kept (``run/server_log.offset``).
        interval_s: Seconds between polls.
        parse: Lines to rows (`parse_log_lines`; `parse_refusal_lines` for ``refusals.log``).
    """

    name = "stagelog-triton-log"

    def __init__(
        self,
        spool_dir: Path,
        log_path: Path,
        state_path: Path,
        interval_s: float = LOG_POLL_S,
        parse: Parser = parse_log_lines,
    ) -> None:
        super().__init__(interval_s)
        self.parse = parse
        self.spool_dir = Path(spool_dir)
        self.log_path = Path(log_path)
        self.state_path = Path(state_path)
        self.host = socket.gethostname()
        self.inode, self.offset = self._load_state()

    def _load_state(self) -> tuple[int, int]:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            return int(state["inode"]), int(state["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"inode": self.inode, "offset": self.offset}), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def step(self) -> None:
        """Read what was appended since the last step; write its W/E/F entries."""
        try:
            stat = self.log_path.stat()
        except OSError:
            return
        if stat.st_ino != self.inode or stat.st_size < self.offset:
            # A new file (rotated at a server start) or a truncated one: first the rest of the
            # rotated file (a crash's last lines are there), then the new one from its start.
            rotated = self.log_path.with_name(self.log_path.name + ".1")
            if self.inode and _inode(rotated) == self.inode:
                self._read(rotated, whole_lines=False)
            self.inode, self.offset = stat.st_ino, 0
        self._read(self.log_path)

    def _read(self, path: Path, whole_lines: bool = True) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        if size <= self.offset:
            return
        with open(path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        end = data.rfind(b"\n")
        if end < 0 and whole_lines:
            return  # half a line: wait for its end
        if whole_lines:
            data = data[: end + 1]
        lines: list[tuple[int, str]] = []
        position = self.offset
        for raw in data.splitlines(keepends=True):
            lines.append((position, raw.decode("utf-8", "replace").rstrip("\r\n")))
            position += len(raw)
        rows = self.parse(lines, _now().year, str(path), self.host)
        if rows:
            write_table(
                self.spool_dir, "server_logs", pa.Table.from_pylist(rows, schema=SERVER_LOGS_SCHEMA)
            )
            self.rows_written += len(rows)
        self.offset = position
        self._save_state()


class RefusalTailer(LogTailer):
    """Follows ``logs/refusals.log`` (written by ``stack/refusal_log.c``) into ``server_logs``."""

    name = "stagelog-refusal-log"

    def __init__(
        self, spool_dir: Path, log_path: Path, state_path: Path, interval_s: float = LOG_POLL_S
    ) -> None:
        super().__init__(spool_dir, log_path, state_path, interval_s, parse=parse_refusal_lines)


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return 0


def start_samplers(
    home: Path, spool_dir: Path, metrics_port: int, interval_ms: int = DEFAULT_METRICS_MS
) -> list[_Worker]:
    """Start the samplers for the stack in ``home`` (the collector's hook).

    Args:
        home: The stack's state directory (its tritonserver pid file and log).
        spool_dir: Where the samples go.
        metrics_port: Triton's metrics port.
        interval_ms: Period of the metrics samples (``Settings.triton_metrics_ms``).
    """
    interval = interval_ms / 1000

    def server_pid() -> int:
        try:
            return int((home / "pids" / "tritonserver.pid").read_text().strip())
        except (OSError, ValueError):
            return 0

    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    return [
        MetricsSampler(
            spool_dir, f"http://127.0.0.1:{metrics_port}/metrics", server_pid, interval
        ).start(),
        LogTailer(spool_dir, home / "logs" / "tritonserver.log", run / "server_log.offset").start(),
        RefusalTailer(spool_dir, home / "logs" / REFUSAL_LOG, run / "refusal_log.offset").start(),
    ]


def stop_samplers(workers: Iterable[_Worker]) -> None:
    """Stop every sampler (each writes what it has first)."""
    for worker in workers:
        worker.stop()


__all__ = [
    "LogTailer",
    "MetricsSampler",
    "RefusalTailer",
    "parse_log_lines",
    "parse_prometheus",
    "parse_refusal_lines",
    "request_id_of",
    "start_samplers",
    "stop_samplers",
]
