"""Stage instrumentation used by every model.py (API pinned in docs/architecture.md).

This first version is the null logger only (what `STAGELOG_LOGGING=off` serves); the
buffering logger that writes spool segments replaces `StageLog.from_triton_args`'s
enabled branch.
"""

from __future__ import annotations

import time
from typing import Any


class NullRecord:
    """A request record that keeps nothing: the logging-off path."""

    __slots__ = ("status", "error")

    def __init__(self) -> None:
        self.status = "ok"
        self.error = ""

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


class NullStageLog:
    """Stage logger that records nothing."""

    enabled = False

    def request(self, request_id: str, rows: int) -> NullRecord:
        """Open a record for one request."""
        return NullRecord()

    def close(self) -> None:
        """Flush and stop (nothing to do)."""


class StageLog:
    """Factory for the logger a stage uses."""

    @staticmethod
    def from_triton_args(args: dict[str, Any]) -> NullStageLog:
        """Build the logger for a model instance from Triton's initialize() args."""
        del args
        _ = time.monotonic
        return NullStageLog()
