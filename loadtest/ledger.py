"""The load test's ledger: one JSON line per request sent, and what came back.

Kept free of locust and gevent so that the loss check can read it in a plain process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from logging_backend.errors import StagelogError

DEFAULT_REQUEST_LOG = Path("loadtest/reports/requests.jsonl")


class LedgerError(StagelogError):
    """Raised when a ledger file is missing or holds a line that is not a ledger record."""


@dataclass(frozen=True)
class Sent:
    """One ledger line: a request the load test sent and what came back."""

    request_id: str
    rows: int
    bad: bool
    ok: bool
    status: str = ""
    error: str = ""


class RequestLog:
    """Append-only JSONL ledger of the requests one locust process sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Start a fresh ledger (truncates an earlier run's)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, sent: Sent) -> None:
        """Append one line (the ledger must be open)."""
        if self._file is None:
            raise LedgerError(f"request log {self.path} is not open")
        with self._lock:
            self._file.write(json.dumps(asdict(sent), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Push buffered lines to the file."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the ledger."""
        if self._file is not None:
            self._file.close()
            self._file = None


def request_log_path(path: Path, worker: bool, pid: int) -> Path:
    """The ledger of this process: ``path``, or ``<stem>.<pid><suffix>`` on a distributed worker."""
    return path.with_name(f"{path.stem}.{pid}{path.suffix}") if worker else path


def read_ledger(paths: Iterable[Path]) -> list[Sent]:
    """Read every line of the given ledger files (a request id seen twice keeps its last line).

    Raises:
        LedgerError: a file is missing or holds a line that is not a ledger record.
    """
    sent: dict[str, Sent] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LedgerError(f"cannot read ledger {path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = Sent(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise LedgerError(f"{path}:{number}: not a ledger record: {exc}") from exc
            sent[record.request_id] = record
    return list(sent.values())
