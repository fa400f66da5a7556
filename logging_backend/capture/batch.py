"""The background batch processor between a stage's request path and its exporter.

The shape of OpenTelemetry's ``BatchProcessor``: a bounded buffer, one named worker thread, an
event that wakes the worker early when a batch is full, a periodic wake-up, exporter errors
caught and logged (never raised into inference), a counted drop when the buffer is full,
``force_flush()`` and ``shutdown(timeout)`` that drains.

The request path calls :meth:`BatchProcessor.emit` only: one ``deque.append`` (atomic under the
GIL, so no lock), a length check and, once a batch is waiting, an event set.
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from logging_backend.errors import ConfigError
from logging_backend.spool.ticks import until_tick

_LOG = logging.getLogger("stagelog.batch")

DEFAULT_MAX_QUEUE = 10_000  # records; at ~40 KB for a 64-row features record, <= ~400 MB
DEFAULT_MAX_BATCH = 1000  # Langfuse's anchor: 1,000 rows or 1 s, whichever comes first


# Objects the garbage collector counts for one buffered record at most: the Record, its tuples
# of tensors and predictions and one tuple per entry (the pipeline's busiest stage, features,
# holds 11; tests/unit/capture/test_stage_logger.py measures the stages' records).
GC_OBJECTS_PER_ITEM = 16

_gc_lock = threading.Lock()
_gc_room = 0  # what make_gc_room added to this process's first threshold


def make_gc_room(items: int) -> int:
    """Raise the garbage collector's first threshold by what ``items`` buffered records hold.

    CPython collects its youngest generation whenever the container objects allocated and not
    yet freed since the last collection exceed that threshold (700). Records waiting for the
    flush are such objects, alive by design until the flush frees them all at once: without
    room for them the stage process ran collections that found nothing to free, 17-20 us of
    CPU per request over the six stages at 32 in flight, and a full collection of the model's
    whole heap (~60 ms) every 20 s or so (issue 11, bench/results/i11k). With room, the
    process's own garbage is collected as often as before. Once per process, whatever the
    number of stage logs (the largest room asked for stands); a threshold of 0 (collection
    off) is left alone.

    Returns:
        The first threshold now in force.
    """
    global _gc_room
    want = max(0, int(items)) * GC_OBJECTS_PER_ITEM
    with _gc_lock:
        first, second, third = gc.get_threshold()
        if first == 0 or want <= _gc_room:
            return first
        base = first - _gc_room
        gc.set_threshold(base + want, second, third)
        _LOG.info(
            "stagelog: gc threshold %d -> %d (room for %d buffered records)",
            first,
            base + want,
            items,
        )
        _gc_room = want
        return base + want


# The operating system's name of every flush thread starts so (15 bytes at most on Linux):
# `top -H`, `perf` and bench.overhead's flush CPU tell the flush threads from the rest by it.
OS_THREAD_PREFIX = "sl-flush"


def name_os_thread(name: str) -> None:
    """Give the calling thread the OS name ``sl-flush-<model>``, cut to 15 bytes.

    ``<model>`` is ``name`` less its ``stagelog-flush-`` prefix; where /proc is not there (not
    Linux), nothing happens.
    """
    short = name.removeprefix("stagelog-flush").lstrip("-")
    os_name = f"{OS_THREAD_PREFIX}-{short}" if short else OS_THREAD_PREFIX
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
            comm.write(os_name.encode("ascii", "replace").decode()[:15])
    except OSError:
        pass


class Exporter(Protocol):
    """Where batches go: the spool writer in production, an in-memory list in unit tests."""

    destination: str

    def export(self, batch: Sequence[Any]) -> None:
        """Store one batch; raise on failure (the processor catches and logs it)."""

    def shutdown(self) -> None:
        """Release resources; called once, after the last export."""


class InMemoryExporter:
    """Keeps every exported batch in a list (unit tests, benchmarks)."""

    destination = "memory"

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.is_shutdown = False

    def export(self, batch: Sequence[Any]) -> None:
        """Keep the batch."""
        self.batches.append(list(batch))

    def shutdown(self) -> None:
        """Mark the exporter closed."""
        self.is_shutdown = True

    @property
    def items(self) -> list[Any]:
        """Every exported item, in export order."""
        return [item for batch in self.batches for item in batch]


class BatchProcessor:
    """Buffers items from the request path and hands them to an exporter from one thread.

    Args:
        exporter: Receives batches of at most ``max_batch`` items, from the worker thread only.
        flush_ms: Period of the worker's wake-up; a non-empty buffer is exported at least
            this often. The wake-ups fall on multiples of the period on the wall clock
            (:mod:`logging_backend.spool.ticks`), the same instants in every process of a host,
            so that the collector, polling just after them, finds every stage's flush at once.
        max_queue: Items the buffer holds; beyond it, ``emit`` drops and counts.
        max_batch: Items per ``export`` call; a buffer this full wakes the worker early.
        name: Name of the worker thread (shows in ``py-spy`` and thread dumps).
        on_drop: Called from the worker with the number of items dropped since the last call
            (buffer full or export failed); what it returns (a sequence of items) is exported
            with the next batch, so that drops are recorded as data.
    """

    def __init__(
        self,
        exporter: Exporter,
        flush_ms: int = 1000,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "stagelog-flush",
        on_drop: Callable[[int, str], Sequence[Any]] | None = None,
    ) -> None:
        if flush_ms <= 0:
            raise ConfigError(f"flush_ms must be > 0, got {flush_ms}")
        if max_batch <= 0 or max_queue < max_batch:
            raise ConfigError(f"need 0 < max_batch <= max_queue, got {max_batch}, {max_queue}")
        self._exporter = exporter
        self._period = flush_ms / 1000.0
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._on_drop = on_drop
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._waiters_lock = threading.Lock()
        self._closed = False
        self._stopping = False
        self.dropped = 0  # items refused because the buffer was full (request path)
        self.failed = 0  # items lost because export raised (worker)
        self.exported = 0  # items the exporter accepted
        self._reported_dropped = 0
        self._reported_failed = 0
        self._worker = threading.Thread(target=self._run, name=name, daemon=True)
        self._worker.start()

    @property
    def max_batch(self) -> int:
        """Items per ``export`` call (a full batch wakes the worker)."""
        return self._max_batch

    # -- request path ----------------------------------------------------------------------

    def emit(self, item: Any) -> None:
        """Buffer one item; drop and count it when the buffer is full or closed."""
        queue = self._queue
        if self._closed or len(queue) >= self._max_queue:
            self.dropped += 1
            return
        queue.append(item)
        if len(queue) >= self._max_batch and not self._wake.is_set():
            self._wake.set()

    # -- control ---------------------------------------------------------------------------

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export everything buffered now; True when done within ``timeout`` seconds."""
        if self._stopping or not self._worker.is_alive():
            return not self._queue
        done = threading.Event()
        with self._waiters_lock:
            self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting items, export what is buffered, shut the exporter down.

        Returns:
            True when the worker finished within ``timeout`` seconds.
        """
        if self._stopping:
            self._worker.join(timeout)
            return not self._worker.is_alive()
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout)
        finished = not self._worker.is_alive()
        if not finished:
            _LOG.error(
                "stagelog: shutdown timed out after %.1fs with %d items unexported (to %s)",
                timeout,
                len(self._queue),
                self._exporter.destination,
            )
        return finished

    @property
    def queued(self) -> int:
        """Items waiting in the buffer."""
        return len(self._queue)

    # -- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        name_os_thread(self._worker.name)
        while not self._stopping:
            self._wake.wait(until_tick(self._period))
            self._wake.clear()
            self._drain()
        self._drain()
        try:
            self._exporter.shutdown()
        except Exception:
            _LOG.exception("stagelog: exporter shutdown failed (%s)", self._exporter.destination)

    def _drain(self) -> None:
        """Export everything buffered at this moment, then release force_flush() waiters."""
        with self._waiters_lock:
            waiters, self._flush_waiters = self._flush_waiters, []
        queue = self._queue
        extra = self._drop_notices()
        # Only what is buffered now: a steady trickle must not keep the worker here forever.
        remaining = len(queue)
        while remaining > 0 or extra:
            n = min(remaining, self._max_batch)
            remaining -= n
            batch = [queue.popleft() for _ in range(n)]
            batch.extend(extra)
            extra = []
            self._export(batch)
        for done in waiters:
            done.set()

    def _export(self, batch: list[Any]) -> None:
        started = time.perf_counter()
        try:
            self._exporter.export(batch)
        except Exception:
            self.failed += len(batch)
            _LOG.exception(
                "stagelog: export of %d items to %s failed; they are lost (%d lost so far)",
                len(batch),
                self._exporter.destination,
                self.failed,
            )
            return
        self.exported += len(batch)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > 1000:
            _LOG.warning(
                "stagelog: export of %d items to %s took %.0f ms",
                len(batch),
                self._exporter.destination,
                elapsed_ms,
            )

    def _drop_notices(self) -> list[Any]:
        """Log newly counted drops and turn them into items (via ``on_drop``)."""
        notices: list[Any] = []
        dropped, failed = self.dropped, self.failed
        for count, reported, reason in (
            (dropped, self._reported_dropped, "buffer full"),
            (failed, self._reported_failed, "export failed"),
        ):
            new = count - reported
            if new <= 0:
                continue
            _LOG.warning(
                "stagelog: %d records dropped (%s; %d in total) for %s",
                new,
                reason,
                count,
                self._exporter.destination,
            )
            if self._on_drop is not None:
                try:
                    notices.extend(self._on_drop(new, reason))
                except Exception:
                    _LOG.exception("stagelog: on_drop callback failed")
        self._reported_dropped, self._reported_failed = dropped, failed
        return notices
