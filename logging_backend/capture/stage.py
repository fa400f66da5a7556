"""Stage instrumentation used by every ``model.py`` (API pinned in docs/architecture.md).

``StageLog.from_triton_args(args)`` in ``initialize`` returns the logger of one model instance;
``with log.request(request_id, rows=n) as rec:`` opens the record of one request. On the
request path the record only keeps references (tensors are copied, since Triton reuses its
shared memory after the response) and appends itself to a bounded in-memory buffer when the
``with`` block ends. A background thread (:class:`~logging_backend.capture.batch.BatchProcessor`)
turns buffered records into Arrow tables and writes spool segments
(:mod:`logging_backend.capture.exporter`).

What is kept of the tensors follows the stage's logging policy, read from the model config's
``parameters`` block (``logging_policy``, ``sample_rate``, ``logging_reason``):

- ``full`` (default): every input, output and state tensor, values included.
- ``sampled``: tensors only for a deterministic fraction ``sample_rate`` of request ids (CRC32
  of the id, so every sampled stage keeps the same requests); events and predictions always.
- ``summary``: per tensor the element count, min, max, mean and NaN count instead of values.
- ``off``: no tensors; events and predictions still.

Every policy other than ``full`` is written to ``logging_policy`` at model load with its reason.

Each arrow is stored once (:mod:`logging_backend.capture.arrows`): an input the ensemble feeds
from another stage's output is stored as a digest pointing at the producer's stored output.
That choice is written to ``logging_policy`` too (``scope = 'arrows'``); the model config
parameter ``logging_arrows`` = ``full`` switches a stage back to full copies of its inputs.

GPU hook: ``rec.gpu_ms`` and ``rec.gpu_mem_bytes`` start as ``None`` (stored as NULL, not 0) and
``rec.device`` as the logger's ``device``; a GPU stage sets them inside the ``with`` block.
"""

from __future__ import annotations

import atexit
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from logging_backend import config
from logging_backend.capture import arrows
from logging_backend.capture.batch import BatchProcessor, make_gc_room
from logging_backend.capture.exporter import SpoolExporter
from logging_backend.capture.records import (
    MODEL_CARD,
    ModelIdentity,
    ModelLoad,
    NullRecord,
    Policy,
    PolicyNotice,
    Record,
    artifact_digest,
)
from logging_backend.errors import ConfigError

_LOG = logging.getLogger("stagelog.stage")
_time_ns = time.time_ns


# -- loggers ---------------------------------------------------------------------------------


class StageLogger:
    """The logger of one model instance: opens records and owns the background flush.

    Args:
        identity: Written on every row.
        processor: Receives finished records (a
            :class:`~logging_backend.capture.batch.BatchProcessor`).
        policy: What is kept of tensors.
        device: Default ``device`` of records (``cpu`` until a GPU stage says otherwise).
    """

    enabled = True

    def __init__(
        self,
        identity: ModelIdentity,
        processor: Any,
        policy: Policy,
        device: str = "cpu",
        class_names: Sequence[str] = (),
        instrumented: bool = True,
    ) -> None:
        self.identity = identity
        self.processor = processor
        self.policy = policy
        self.device = device
        self.class_names = tuple(class_names)
        # False: logging is off, only rows a caller sent on purpose (Record.table_rows) are written
        self.instrumented = instrumented
        self.gpu_probe: Any = None
        # input -> (producer stage, output): stored as a digest (capture.arrows)
        self.arrow_sources: dict[str, tuple[str, str]] = {}
        # outputs another stage refers to: stored with the digest of their bytes
        self.arrow_outputs: frozenset[str] = frozenset()
        self.arrow_notice = ""  # the logging_policy reason of the arrows choice

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
        """Buffer the model_versions row and the logging_policy rows of its choices.

        A row for a policy other than full, and one for how its inputs that are another
        stage's outputs are stored (digest or full copies), when it has any.
        """
        self.processor.emit(load)
        if self.arrow_notice and load.policy.keeps_tensors and not load.policy.summarizes:
            self.processor.emit(
                PolicyNotice(
                    identity=self.identity,
                    ts_ns=load.ts_ns,
                    scope="arrows",
                    policy="digest" if self.arrow_sources else "full_copies",
                    sample_rate=load.policy.sample_rate,
                    reason=self.arrow_notice,
                )
            )
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


def _arrow_mode(model_config: Mapping[str, Any], model: str) -> str:
    """The ``logging_arrows`` parameter: ``digest`` (default) or ``full``."""
    value = (model_config.get("parameters") or {}).get("logging_arrows")
    if isinstance(value, Mapping):
        value = value.get("string_value")
    mode = str(value or "digest").strip().lower()
    if mode not in arrows.ARROW_MODES:
        raise ConfigError(
            f"model {model!r}: parameter logging_arrows={mode!r} must be one of "
            f"{', '.join(arrows.ARROW_MODES)}"
        )
    return mode


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


class NullStageLog:
    """Stage logger that records nothing."""

    enabled = False
    device = "cpu"
    gpu_probe = None

    def set_gpu(self, probe: Any) -> None:
        """Ignore the probe."""

    def request(self, request_id: str | bytes, rows: int) -> NullRecord:
        """Open a record for one request."""
        if isinstance(request_id, bytes):
            request_id = request_id.decode("utf-8", "replace")
        return NullRecord(str(request_id))

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Nothing is buffered."""
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop (nothing to do)."""


class StageLog:
    """Factory for the logger a stage uses."""

    @staticmethod
    def from_triton_args(
        args: Mapping[str, Any],
        exporter: Any = None,
        gpu: Any = None,
        class_names: Sequence[str] = (),
        keep_data: bool = False,
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
            class_names: Names of the classes of every probability vector, in order (the
                workload's; handed in, never imported by the logging code).
            keep_data: With ``STAGELOG_LOGGING=off``, still write the rows the stage records
                with :meth:`Record.table_rows` (data, not instrumentation); nothing else.

        Returns:
            The null logger when ``STAGELOG_LOGGING=off`` (unless ``keep_data``), else a
            :class:`StageLogger`.

        Raises:
            ConfigError: When a setting or a logging parameter cannot be parsed.
        """
        settings = config.load()
        if not settings.logging and not keep_data:
            return NullStageLog()
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
            triton_version=settings.triton_version,
            artifact_sha256=sha,
            instance=str(args.get("model_instance_name") or model),
        )
        if exporter is None:
            # half the collector's floor: its budget drops old rows before stages stop writing
            exporter = SpoolExporter(
                settings.spool_dir,
                identity,
                min_free_bytes=(settings.spool_min_free_mb << 20) // 2,
                spool_format=settings.spool_format,
            )
        logger = StageLogger(
            identity, None, policy, class_names=class_names, instrumented=settings.logging
        )
        if gpu is not None:
            logger.set_gpu(gpu)
        mode = _arrow_mode(model_config, model)
        plan = arrows.plan(
            Path(repo).parent if repo else None, model, mode, policy.mode, policy.sample_rate
        )
        logger.arrow_sources = plan.sources
        logger.arrow_outputs = plan.outputs
        logger.arrow_notice = arrows.describe(plan)
        logger.processor = BatchProcessor(
            exporter,
            flush_ms=settings.flush_ms,
            name=f"stagelog-flush-{model}",
            on_drop=logger.drop_notices,
        )
        if settings.gc_room:
            make_gc_room(logger.processor.max_batch)
        # finalize() closes the log; should the process exit without it, drain at exit
        atexit.register(logger.close, 2.0)
        if not logger.instrumented:
            return logger
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
