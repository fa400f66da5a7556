"""Stage instrumentation used by every ``model.py`` (API pinned in docs/architecture.md).

``StageLog.from_triton_args(args)`` in ``initialize`` returns the logger of one model instance;
``with log.request(request_id, rows=n) as rec:`` opens the record of one request. On the
request path the record only keeps references (tensors are copied, since Triton reuses its
shared memory after the response) and appends itself to a bounded in-memory buffer when the
``with`` block ends. A background thread (:class:`logging_backend.batch.BatchProcessor`) turns
buffered records into Arrow tables and writes spool segments (:mod:`logging_backend.spool_writer`).

What is kept of the tensors follows the stage's logging policy, read from the model config's
``parameters`` block (``logging_policy``, ``sample_rate``, ``logging_reason``):

- ``full`` (default): every input, output and state tensor, values included.
- ``sampled``: tensors only for a deterministic fraction ``sample_rate`` of request ids (CRC32
  of the id, so every sampled stage keeps the same requests); events and predictions always.
- ``summary``: per tensor the element count, min, max, mean and NaN count instead of values.
- ``off``: no tensors; events and predictions still.

Every policy other than ``full`` is written to ``logging_policy`` at model load with its reason.

GPU hook: ``rec.gpu_ms`` and ``rec.gpu_mem_bytes`` start as ``None`` (stored as NULL, not 0) and
``rec.device`` as the logger's ``device``; a GPU stage sets them inside the ``with`` block.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import socket
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from logging_backend import config
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
        "_t0",
        "_c0",
    )

    def __init__(self, logger: StageLogger, request_id: str, rows: int, keep: bool) -> None:
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
        # (direction, name, array-or-mapping) in call order
        self.tensors: list[tuple[str, str, Any]] = []
        # (model, probs [rows, C], decisions or None)
        self.preds: list[tuple[str, np.ndarray, np.ndarray | None]] = []

    def __enter__(self) -> Record:
        self.ts_ns = _time_ns()
        self._c0 = _thread_ns()
        self._t0 = _perf_ns()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.wall_ms = (_perf_ns() - self._t0) / 1e6
        self.cpu_ms = (_thread_ns() - self._c0) / 1e6
        if exc is not None:
            self.status = "error"
            self.error = _describe(exc)
        self.logger.processor.emit(self)
        return None

    def input(self, name: str, array: Any) -> None:
        """Record an input tensor (a numpy array; object/bytes arrays for strings)."""
        if self.keep:
            self.tensors.append(("input", name, _snapshot(array)))

    def output(self, name: str, array: Any) -> None:
        """Record an output tensor."""
        if self.keep:
            self.tensors.append(("output", name, _snapshot(array)))

    def state(self, name: str, value: Any) -> None:
        """Record intermediate state the stage used: an array, or a mapping of arrays.

        A mapping is stored as one tensor per key, named ``name.key``.
        """
        if not self.keep:
            return
        if isinstance(value, Mapping):
            value = {str(k): _snapshot(v) for k, v in value.items()}
        else:
            value = _snapshot(value)
        self.tensors.append(("state", name, value))

    def predictions(self, model: str, probs: Any, decisions: Any = None) -> None:
        """Record class probabilities per row (``[rows, classes]``), and decisions if any."""
        self.preds.append(
            (model, _snapshot(probs), None if decisions is None else _snapshot(decisions))
        )

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


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if callable(message):  # pb_utils.TritonError keeps its text behind message()
        try:
            message = message()
        except Exception:
            message = None
    return f"{type(exc).__name__}: {message if isinstance(message, str) else exc}"


# -- loggers ---------------------------------------------------------------------------------


class StageLogger:
    """The logger of one model instance: opens records and owns the background flush.

    Args:
        identity: Written on every row.
        processor: Receives finished records (see :class:`logging_backend.batch.BatchProcessor`).
        policy: What is kept of tensors.
        device: Default ``device`` of records (``cpu`` until a GPU stage says otherwise).
    """

    enabled = True

    def __init__(
        self, identity: ModelIdentity, processor: Any, policy: Policy, device: str = "cpu"
    ) -> None:
        self.identity = identity
        self.processor = processor
        self.policy = policy
        self.device = device
        self.gpu_probe: Any = None

    def set_gpu(self, probe: Any) -> None:
        """Attach a GPU probe (``.device``, ``.device_id``, ``.memory_bytes()``).

        Records then carry ``device`` ``gpu:<id>`` and the flush thread samples the process's
        GPU memory once per batch into ``gpu_mem_bytes``. A probe on CPU changes nothing.
        """
        if getattr(probe, "device", "cpu") == "cpu":
            return
        device_id = getattr(probe, "device_id", None)
        self.device = "gpu" if device_id is None else f"gpu:{device_id}"
        self.gpu_probe = probe

    def request(self, request_id: str | bytes, rows: int) -> Record:
        """Open the record of one request (use as a context manager)."""
        if isinstance(request_id, bytes):
            request_id = request_id.decode("utf-8", "replace")
        elif not isinstance(request_id, str):
            request_id = str(request_id)
        if type(rows) is not int or rows < 0:
            rows = _valid_rows(rows, self.identity.model)
        return Record(self, request_id, rows, self.policy.keeps(request_id))

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Write everything buffered now to the spool."""
        return self.processor.force_flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush everything and stop the background thread (``finalize``)."""
        atexit.unregister(self.close)
        self.processor.shutdown(timeout)

    def announce(self, load: ModelLoad) -> None:
        """Buffer the model_versions row and, unless the policy is full, its logging_policy row."""
        self.processor.emit(load)
        if load.policy.mode != "full":
            self.processor.emit(
                PolicyNotice(
                    identity=self.identity,
                    ts_ns=load.ts_ns,
                    scope="tensors",
                    policy=load.policy.mode,
                    sample_rate=load.policy.sample_rate,
                    reason=load.policy.reason,
                )
            )

    def drop_notices(self, dropped: int, reason: str) -> Sequence[PolicyNotice]:
        """Turn a count of dropped records into a logging_policy row (processor callback)."""
        return [
            PolicyNotice(
                identity=self.identity,
                ts_ns=_time_ns(),
                scope="buffer",
                policy="dropped",
                sample_rate=0.0,
                reason=f"{reason}: {dropped} records dropped",
                dropped=dropped,
            )
        ]


def _valid_rows(rows: Any, model: str) -> int:
    """A row count for the record; logging never raises into inference, so bad ones become 0."""
    try:
        value = int(rows)
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        _LOG.warning("stagelog: %s: rows=%r is not a count >= 0; recorded as 0", model, rows)
        return 0
    return value


class NullRecord:
    """A request record that keeps nothing: the logging-off path."""

    __slots__ = ("status", "error", "gpu_ms", "gpu_mem_bytes", "device")

    gpu_pending = None

    def __init__(self) -> None:
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

    def fail(self, message: str) -> None:
        """Mark the request failed with a handled error."""
        self.status = "error"
        self.error = message

    def gpu_time(self, pending: Any) -> None:
        """Ignore a GPU timing."""


class NullStageLog:
    """Stage logger that records nothing."""

    enabled = False
    device = "cpu"
    gpu_probe = None

    def set_gpu(self, probe: Any) -> None:
        """Ignore the probe."""

    def request(self, request_id: str | bytes, rows: int) -> NullRecord:
        """Open a record for one request."""
        return NullRecord()

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Nothing is buffered."""
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop (nothing to do)."""


class StageLog:
    """Factory for the logger a stage uses."""

    @staticmethod
    def from_triton_args(
        args: Mapping[str, Any], exporter: Any = None, gpu: Any = None
    ) -> StageLogger | NullStageLog:
        """Build the logger for a model instance from Triton's ``initialize()`` args.

        Reads ``model_name``, ``model_version``, ``model_repository`` (the model's folder),
        ``model_instance_name`` and ``model_config`` (JSON); settings from
        :mod:`logging_backend.config`. Hashes the version folder once and buffers the
        ``model_versions`` row (and the ``logging_policy`` row of a policy other than full).

        Args:
            args: Triton's initialize() arguments.
            exporter: Where batches go; default the spool writer under ``STAGELOG_HOME``.
            gpu: A GPU probe (see :meth:`StageLogger.set_gpu`); given here, the
                ``model_versions`` row carries the GPU device too.

        Returns:
            The null logger when ``STAGELOG_LOGGING=off``, else a :class:`StageLogger`.

        Raises:
            ConfigError: When a setting or a logging parameter cannot be parsed.
        """
        settings = config.load()
        if not settings.logging:
            return NullStageLog()
        from logging_backend.batch import BatchProcessor  # noqa: PLC0415 (not on the off path)

        model = str(args.get("model_name") or "")
        if not model:
            raise ConfigError("Triton args carry no model_name")
        version = str(args.get("model_version") or "1")
        model_config_text = args.get("model_config") or "{}"
        try:
            model_config = json.loads(model_config_text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model {model!r}: model_config is not JSON: {exc}") from None
        policy = Policy.from_model_config(model_config, model)
        repo = args.get("model_repository")
        version_dir = Path(repo) / version if repo else None
        sha, artifacts = artifact_digest(version_dir) if version_dir else ("", {})
        card = ""
        if version_dir is not None and (version_dir / MODEL_CARD).is_file():
            card = (version_dir / MODEL_CARD).read_text(encoding="utf-8")
        identity = ModelIdentity(
            model=model,
            model_version=version,
            triton_version=config.get_str(config.TRITON_VERSION, ""),
            artifact_sha256=sha,
            instance=str(args.get("model_instance_name") or model),
        )
        if exporter is None:
            from logging_backend.spool_writer import SpoolExporter  # noqa: PLC0415

            exporter = SpoolExporter(settings.spool_dir, identity)
        logger = StageLogger(identity, None, policy)
        if gpu is not None:
            logger.set_gpu(gpu)
        logger.processor = BatchProcessor(
            exporter,
            flush_ms=settings.flush_ms,
            name=f"stagelog-flush-{model}",
            on_drop=logger.drop_notices,
        )
        # finalize() closes the log; should the process exit without it, drain at exit
        atexit.register(logger.close, 2.0)
        logger.announce(
            ModelLoad(
                identity=identity,
                ts_ns=_time_ns(),
                device=logger.device,
                policy=policy,
                artifacts=artifacts,
                model_card=card,
                model_config=model_config_text,
            )
        )
        return logger
