"""BatchProcessor: the background flush between the request path and the exporter."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from logging_backend.capture.batch import BatchProcessor, InMemoryExporter
from logging_backend.errors import ConfigError


class BlockingExporter(InMemoryExporter):
    """Holds the worker inside export() until released."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, batch):
        self.entered.set()
        assert self.release.wait(10)
        super().export(batch)


class FailingExporter(InMemoryExporter):
    destination = "nowhere"

    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    def export(self, batch):
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk on fire")
        super().export(batch)


def _wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_worker_is_one_named_thread():
    proc = BatchProcessor(InMemoryExporter(), name="stagelog-flush-mlp")
    assert any(t.name == "stagelog-flush-mlp" for t in threading.enumerate())
    assert proc.shutdown(5)
    assert not any(t.name == "stagelog-flush-mlp" for t in threading.enumerate())


def test_periodic_flush_exports_a_partial_batch_within_the_period():
    exporter = InMemoryExporter()
    proc = BatchProcessor(exporter, flush_ms=50, max_batch=1000)
    time.sleep(0.06)  # land the emit at an arbitrary phase of the period
    started = time.monotonic()
    proc.emit("a")
    assert _wait_for(lambda: exporter.items == ["a"], timeout=2)
    assert time.monotonic() - started < 0.5
    proc.shutdown()


def test_partial_batch_waits_for_the_period_and_a_full_batch_wakes_the_worker_early():
    exporter = InMemoryExporter()
    proc = BatchProcessor(exporter, flush_ms=60_000, max_batch=10, max_queue=100)
    time.sleep(0.05)  # let the worker reach its wait
    for i in range(9):
        proc.emit(i)
    time.sleep(0.2)
    assert exporter.items == []  # a partial batch waits for the (long) period
    proc.emit(9)
    assert _wait_for(lambda: len(exporter.items) == 10, timeout=2)
    assert exporter.batches == [list(range(10))]
    proc.shutdown()


def test_shutdown_drains_everything_in_batches_and_shuts_the_exporter_down():
    exporter = InMemoryExporter()
    proc = BatchProcessor(exporter, flush_ms=60_000, max_batch=100, max_queue=10_000)
    for i in range(950):
        proc.emit(i)
    assert proc.shutdown(timeout=5)
    assert exporter.items == list(range(950))
    assert max(len(b) for b in exporter.batches) <= 100
    assert exporter.is_shutdown
    proc.emit("late")  # after shutdown: refused and counted, never raised
    assert proc.dropped == 1


def test_force_flush_exports_what_is_buffered():
    exporter = InMemoryExporter()
    proc = BatchProcessor(exporter, flush_ms=60_000, max_batch=100)
    proc.emit("x")
    assert proc.force_flush(timeout=5)
    assert exporter.items == ["x"]
    proc.shutdown()


def test_full_buffer_drops_counts_and_records_the_count(caplog):
    exporter = BlockingExporter()
    notices = []

    def on_drop(n, reason):
        notices.append((n, reason))
        return [("dropped", n, reason)]

    proc = BatchProcessor(exporter, flush_ms=10, max_batch=5, max_queue=5, on_drop=on_drop)
    proc.emit("first")
    assert exporter.entered.wait(5)  # worker now stuck exporting ["first"]
    for i in range(12):
        proc.emit(i)  # 5 fit, 7 dropped; the request path never blocks
    assert proc.dropped == 7
    with caplog.at_level(logging.WARNING, logger="stagelog.batch"):
        exporter.release.set()
        assert proc.shutdown(5)
    assert notices == [(7, "buffer full")]
    assert ("dropped", 7, "buffer full") in exporter.items
    assert [i for i in exporter.items if isinstance(i, int)] == [0, 1, 2, 3, 4]
    assert "7 records dropped (buffer full; 7 in total)" in caplog.text


def test_exporter_error_is_logged_counted_and_never_raised(caplog):
    exporter = FailingExporter(failures=1)
    notices = []
    proc = BatchProcessor(
        exporter, flush_ms=10, on_drop=lambda n, r: notices.append((n, r)) or ["notice"]
    )
    with caplog.at_level(logging.ERROR, logger="stagelog.batch"):
        proc.emit("lost")
        assert proc.force_flush(5)
    assert proc.failed == 1
    assert "export of 1 items to nowhere failed" in caplog.text
    assert "disk on fire" in caplog.text
    proc.emit("kept")  # the worker survived
    assert proc.shutdown(5)
    assert "kept" in exporter.items and "lost" not in exporter.items
    assert notices == [(1, "export failed")] and "notice" in exporter.items


def test_exporter_shutdown_error_is_logged_not_raised(caplog):
    class BadShutdown(InMemoryExporter):
        def shutdown(self):
            raise RuntimeError("cannot close")

    proc = BatchProcessor(BadShutdown())
    with caplog.at_level(logging.ERROR, logger="stagelog.batch"):
        assert proc.shutdown(5)
    assert "exporter shutdown failed" in caplog.text


def test_shutdown_timeout_is_reported(caplog):
    exporter = BlockingExporter()
    proc = BatchProcessor(exporter, flush_ms=10)
    proc.emit("a")
    assert exporter.entered.wait(5)
    with caplog.at_level(logging.ERROR, logger="stagelog.batch"):
        assert proc.shutdown(timeout=0.1) is False
    assert "shutdown timed out" in caplog.text
    exporter.release.set()
    assert proc.shutdown(timeout=5)


@pytest.mark.parametrize(
    ("kw", "msg"), [({"flush_ms": 0}, "flush_ms"), ({"max_batch": 0}, "max_batch")]
)
def test_bad_arguments_are_refused(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        BatchProcessor(InMemoryExporter(), **kw)


def test_the_flush_thread_has_an_os_name_that_tells_it_apart(tmp_path):
    import sys
    from pathlib import Path

    if not sys.platform.startswith("linux"):
        pytest.skip("thread names under /proc are Linux's")
    processor = BatchProcessor(InMemoryExporter(), flush_ms=10, name="stagelog-flush-features")
    try:
        tid = processor._worker.native_id
        comm = Path(f"/proc/self/task/{tid}/comm")
        deadline = time.monotonic() + 5
        while comm.read_text().strip() != "sl-flush-featur" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert comm.read_text().strip() == "sl-flush-featur"  # 15 bytes: Linux's limit
    finally:
        processor.shutdown()
