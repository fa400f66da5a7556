"""What one stage instance records: its policy, identity, model load and request records.

A :class:`Record` is filled inside ``with log.request(...)`` (:mod:`logging_backend.capture.stage`);
on the request path it only keeps references (tensors are copied, since Triton reuses its
shared memory after the response). The flush thread turns records into columns
(:mod:`logging_backend.capture.encode`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from logging_backend.errors import ConfigError

_LOG = logging.getLogger("stagelog.stage")

POLICIES = ("full", "sampled", "summary", "off")
MODEL_CARD = "model_card.json"
_SAMPLE_SCALE = 1 << 32  # CRC32 range: a request is kept when crc32(id) < rate * 2**32
_SKIP_DIRS = {"__pycache__"}

_perf_ns = time.perf_counter_ns
_thread_ns = time.thread_time_ns
_time_ns = time.time_ns


# -- logging policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a stage keeps of its tensors, and why."""

    mode: str = "full"
    sample_rate: float = 1.0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.mode not in POLICIES:
            raise ConfigError(f"logging_policy={self.mode!r} must be one of {', '.join(POLICIES)}")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ConfigError(f"sample_rate={self.sample_rate!r} must be within [0, 1]")

    @property
    def keeps_tensors(self) -> bool:
        """False when no request keeps its tensors (policy ``off``)."""
        return self.mode != "off"

    @property
    def summarizes(self) -> bool:
        """True when tensors are stored as statistics instead of values."""
        return self.mode == "summary"

    def keeps(self, request_id: str) -> bool:
        """Whether this request's tensors are kept (deterministic per request id)."""
        if self.mode == "off":
            return False
        if self.mode != "sampled":
            return True
        return zlib.crc32(request_id.encode()) < self.sample_rate * _SAMPLE_SCALE

    @classmethod
    def from_model_config(cls, model_config: Mapping[str, Any], model: str = "") -> Policy:
        """Read ``logging_policy``, ``sample_rate`` and ``logging_reason`` from ``parameters``.

        Args:
            model_config: Triton's model configuration (parsed ``args["model_config"]``).
            model: Model name, for error messages.

        Raises:
            ConfigError: When a parameter cannot be parsed.
        """
        params = model_config.get("parameters") or {}

        def param(key: str) -> str | None:
            value = params.get(key)
            if isinstance(value, Mapping):
                value = value.get("string_value")
            return None if value in (None, "") else str(value).strip()

        mode = (param("logging_policy") or "full").lower()
        if mode not in POLICIES:
            raise ConfigError(
                f"model {model!r}: parameter logging_policy={mode!r} must be one of "
                f"{', '.join(POLICIES)}"
            )
        raw_rate = param("sample_rate")
        rate = 1.0
        if raw_rate is not None:
            try:
                rate = float(raw_rate)
            except ValueError:
                raise ConfigError(
                    f"model {model!r}: parameter sample_rate={raw_rate!r} is not a number"
                ) from None
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(
                    f"model {model!r}: parameter sample_rate={raw_rate!r} must be within [0, 1]"
                )
        elif mode == "sampled":
            raise ConfigError(f"model {model!r}: logging_policy 'sampled' needs sample_rate")
        reason = param("logging_reason") or ""
        if mode != "full" and not reason:
            reason = "no reason given (model config parameter logging_reason is missing)"
            _LOG.warning("stagelog: model %s logs %s without a logging_reason", model, mode)
        return cls(mode=mode, sample_rate=rate if mode == "sampled" else 1.0, reason=reason)


# -- identity of a model instance ------------------------------------------------------------


def artifact_digest(version_dir: str | Path) -> tuple[str, dict[str, str]]:
    """SHA-256 of a version folder's files.

    Returns:
        The folder digest (SHA-256 over ``relpath NUL file-sha256 LF`` of every file, sorted by
        path) and the per-file digests. ``__pycache__`` is skipped; a missing folder gives the
        digest of nothing.
    """
    root = Path(version_dir)
    files: dict[str, str] = {}
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in filenames:
                path = Path(dirpath) / name
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(chunk)
                files[path.relative_to(root).as_posix()] = digest.hexdigest()
    total = hashlib.sha256()
    for rel in sorted(files):
        total.update(f"{rel}\0{files[rel]}\n".encode())
    return total.hexdigest(), dict(sorted(files.items()))


@dataclass(frozen=True)
class ModelIdentity:
    """Who wrote a record: the same on every row of one model instance."""

    model: str
    model_version: str
    triton_version: str = ""
    artifact_sha256: str = ""
    instance: str = ""
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class ModelLoad:
    """One ``model_versions`` row: a model instance was loaded."""

    identity: ModelIdentity
    ts_ns: int
    device: str
    policy: Policy
    artifacts: dict[str, str]
    model_card: str
    model_config: str


@dataclass(frozen=True)
class PolicyNotice:
    """One ``logging_policy`` row: a deliberate (or forced) omission and its reason."""

    identity: ModelIdentity
    ts_ns: int
    scope: str  # "tensors": the stage's policy; "buffer": records dropped
    policy: str
    sample_rate: float
    reason: str
    dropped: int = 0


# -- the record of one request ---------------------------------------------------------------


def _snapshot(value: Any) -> Any:
    """A private copy: Triton may reuse an input's memory once the response is sent.

    A GPU array (CuPy: ``__cuda_array_interface__``) is copied on its device, asynchronously;
    the flush thread moves it to the host (:func:`host_array`), off the request path.
    """
    if type(value) is np.ndarray:  # the common case first: ndarray.copy() is the cheapest copy
        return value.copy()
    if hasattr(value, "__cuda_array_interface__") and not isinstance(value, np.ndarray):
        return value.copy()
    return np.array(value, copy=True)


def host_array(value: Any) -> np.ndarray:
    """The numpy form of a snapshot (flush thread): GPU arrays are fetched with ``.get()``."""
    if isinstance(value, np.ndarray):
        return value
    getter = getattr(value, "get", None)
    if callable(getter) and hasattr(value, "__cuda_array_interface__"):
        return np.asarray(getter())
    return np.asarray(value)


class Record:
    """What one stage saw and did for one request; filled inside ``with log.request(...)``."""

    __slots__ = (
        "logger",
        "request_id",
        "rows",
        "keep",
        "ts_ns",
        "wall_ms",
        "cpu_ms",
        "gpu_ms",
        "gpu_mem_bytes",
        "gpu_pending",
        "device",
        "status",
        "error",
        "tensors",
        "preds",
        "data",
        "_t0",
        "_c0",
        "_last",
    )

    def __init__(self, logger: Any, request_id: str, rows: int, keep: bool) -> None:
        self.logger = logger
        self.request_id = request_id
        self.rows = rows
        self.keep = keep
        self.ts_ns = 0
        self.wall_ms = 0.0
        self.cpu_ms = 0.0
        self.gpu_ms: float | None = None
        self.gpu_mem_bytes: int | None = None
        self.gpu_pending: Any = None
        self.device = logger.device
        self.status = "ok"
        self.error = ""
        # (direction, name, array) in call order (a state mapping: one per key); lists while
        # the request runs, tuples once it is emitted (see __exit__)
        self.tensors: list[tuple[str, str, Any]] | tuple[tuple[str, str, Any], ...] = []
        # (model, probs [rows, C], decisions or None)
        self.preds: list[tuple[str, Any, Any]] | tuple[tuple[str, Any, Any], ...] = []
        # (table, rows): rows the caller sent on purpose (feedback reports)
        self.data: list[tuple[str, list[dict[str, Any]]]] | tuple[Any, ...] = []
        # (array given, its snapshot) of the last output: predictions of that same array
        # share the snapshot instead of copying it again
        self._last: tuple[Any, Any] | None = None

    def __enter__(self) -> Record:
        self.ts_ns = _time_ns()
        self._c0 = _thread_ns()
        self._t0 = _perf_ns()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.wall_ms = (_perf_ns() - self._t0) / 1e6
        self.cpu_ms = (_thread_ns() - self._c0) / 1e6
        self._last = None  # the caller's output array: not kept alive until the flush
        # Tuples, not lists, while the record waits for the flush: the garbage collector
        # stops tracking a tuple of strings and arrays at its first pass, so a buffered record
        # is one tracked object instead of four or more (lists and dicts stay tracked), and the
        # stub's collections stop walking the whole buffer again and again (issue 11,
        # bench/results/i11j). A rec.* call after the block is dropped (_late).
        self.tensors = tuple(self.tensors)
        self.preds = tuple(self.preds)
        self.data = tuple(self.data)
        if exc is not None:
            self.status = "error"
            self.error = _describe(exc)
        self.logger.processor.emit(self)
        return None

    def input(self, name: str, array: Any) -> None:
        """Record an input tensor (a numpy array; object/bytes arrays for strings)."""
        if self.keep:
            try:
                self.tensors.append(("input", name, _snapshot(array)))
            except AttributeError:
                _late(self, "input", name)

    def output(self, name: str, array: Any) -> None:
        """Record an output tensor."""
        if self.keep:
            snap = _snapshot(array)
            try:
                self.tensors.append(("output", name, snap))
            except AttributeError:
                _late(self, "output", name)
                return
            self._last = (array, snap)

    def state(self, name: str, value: Any) -> None:
        """Record intermediate state the stage used: an array, or a mapping of arrays.

        A mapping is stored as one tensor per key, named ``name.key``.
        """
        if not self.keep:
            return
        if isinstance(value, Mapping):
            # one entry per key now (what the flush stores): a tuple holding a dict would stay
            # tracked by the garbage collector until the flush, one of strings and an array
            # does not
            entries = [("state", f"{name}.{k}", _snapshot(v)) for k, v in value.items()]
        else:
            entries = [("state", name, _snapshot(value))]
        try:
            self.tensors.extend(entries)
        except AttributeError:
            _late(self, "state", name)

    def predictions(self, model: str, probs: Any, decisions: Any = None) -> None:
        """Record class probabilities per row (``[rows, classes]``), and decisions if any."""
        last = self._last
        snap = last[1] if last is not None and last[0] is probs else _snapshot(probs)
        try:
            self.preds.append((model, snap, None if decisions is None else _snapshot(decisions)))
        except AttributeError:
            _late(self, "predictions", model)

    def table_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (column name -> value) into spool table ``table``, whatever the policy.

        For data a caller sends on purpose (the ``feedback`` model's actions and labels), not
        for instrumentation; the table's spool schema gives the types.
        """
        try:
            self.data.append((table, list(rows)))
        except AttributeError:
            _late(self, "table_rows", table)

    def fail(self, message: str) -> None:
        """Mark the request failed with a handled error."""
        self.status = "error"
        self.error = str(message)

    def gpu_time(self, pending: Any) -> None:
        """Keep a pending GPU timing (``.resolve() -> ms | None``), resolved by the flush thread.

        Setting ``rec.gpu_ms`` directly works too; either way a record without GPU work keeps
        ``gpu_ms`` NULL.
        """
        self.gpu_pending = pending


def _late(rec: Record, call: str, name: str) -> None:
    """A ``rec.*`` call after the ``with`` block: the record is already buffered; dropped."""
    _LOG.warning(
        "stagelog: %s: rec.%s(%r) after the request's with block ended (request %s); not recorded",
        getattr(getattr(rec.logger, "identity", None), "model", "?"),
        call,
        name,
        rec.request_id,
    )


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if callable(message):  # pb_utils.TritonError keeps its text behind message()
        try:
            message = message()
        except Exception:
            message = None
    return f"{type(exc).__name__}: {message if isinstance(message, str) else exc}"


class NullRecord:
    """A request record that keeps nothing: the logging-off path."""

    __slots__ = ("request_id", "status", "error", "gpu_ms", "gpu_mem_bytes", "device")

    gpu_pending = None

    def __init__(self, request_id: str = "") -> None:
        self.request_id = request_id
        self.status = "ok"
        self.error = ""
        self.gpu_ms: float | None = None
        self.gpu_mem_bytes: int | None = None
        self.device = "cpu"

    def __enter__(self) -> NullRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def input(self, name: str, array: Any) -> None:
        """Record an input tensor."""

    def output(self, name: str, array: Any) -> None:
        """Record an output tensor."""

    def state(self, name: str, value: Any) -> None:
        """Record intermediate state the stage used."""

    def predictions(self, model: str, probs: Any, decisions: Any = None) -> None:
        """Record class probabilities per row."""

    def table_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Drop the rows: a null logger writes nothing."""

    def fail(self, message: str) -> None:
        """Mark the request failed with a handled error."""
        self.status = "error"
        self.error = message

    def gpu_time(self, pending: Any) -> None:
        """Ignore a GPU timing."""
