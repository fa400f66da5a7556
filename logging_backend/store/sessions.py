"""Sessions on an embedded chDB store for the query door: one fresh session per request.

chDB 26.9 lets one process open further sessions on the data path it already holds
(``chdb.connect(path)`` again); each has its own settings and runs beside the others, so a
reader's query never waits for the collector's inserts, nor they for it (measured: inserts took
4-46 ms while a 20 s query ran on a second session). A session costs about 3 ms to open.

A reader's session gets the limits, the client's allowed settings and its database first, then
``readonly = 1``, after which the engine itself refuses any write, DDL, ``SYSTEM`` statement,
setting change and the table functions that reach files, URLs and other hosts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import chdb

from logging_backend.errors import StoreError

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Settings a reader may choose: how results are written, never what may run or for how long.
_READER_SETTINGS = re.compile(
    r"^(output_format_\w+|format_\w+|date_time_output_format|date_time_input_format|"
    r"cast_string_to_dynamic_use_inference|session_timezone|extremes|join_use_nulls)$"
)
# Limits a reader may only lower.
_LIMITS = ("max_execution_time", "max_result_rows", "max_result_bytes", "max_memory_usage")


@dataclass(frozen=True)
class ReaderLimits:
    """What one reader query may use.

    Attributes:
        max_execution_time_s: wall-clock limit of one query (ClickHouse ``max_execution_time``).
        max_result_bytes: result size limit (``max_result_bytes``, overflow throws).
        max_memory_bytes: memory of one query inside the engine (``max_memory_usage``).
    """

    max_execution_time_s: int = 60
    max_result_bytes: int = 1 << 30
    max_memory_bytes: int = 2 << 30

    def settings(self) -> dict[str, Any]:
        """The limits as ClickHouse settings."""
        return {
            "max_execution_time": self.max_execution_time_s,
            "timeout_overflow_mode": "throw",
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
        }


class SettingRefused(StoreError):
    """Raised when a reader asks for a setting it may not change."""

    code = 164
    name = "READONLY"


def literal(value: object) -> str:
    """``value`` as a ClickHouse string literal (ClickHouse casts it to the setting's type)."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def reader_settings(requested: Mapping[str, str], limits: ReaderLimits) -> dict[str, Any]:
    """The settings of a reader's session: the limits, lowered where the client asks.

    Raises:
        SettingRefused: a setting readers may not change (ClickHouse's readonly message).
    """
    chosen: dict[str, Any] = dict(limits.settings())
    for name, value in requested.items():
        if not _SETTING_NAME.match(name):
            raise SettingRefused(f"Unknown setting '{name}'")
        if name in _LIMITS:
            try:
                wanted = int(float(value))
            except ValueError:
                raise SettingRefused(f"setting '{name}' = {value!r} is not a number") from None
            if 0 < wanted <= int(chosen[name]):
                chosen[name] = wanted
            elif wanted != int(chosen[name]):
                raise SettingRefused(
                    f"Cannot modify '{name}' setting in readonly mode: readers may only "
                    f"lower it (limit {chosen[name]})"
                )
        elif _READER_SETTINGS.match(name):
            chosen[name] = value
        else:
            raise SettingRefused(f"Cannot modify '{name}' setting in readonly mode")
    return chosen


class Sessions:
    """Opens sessions on one chDB data path (the process may already hold it elsewhere).

    Args:
        path: the chDB data directory.
        max_sessions: sessions open at once; one more waits up to ``wait_s`` then fails.
    """

    def __init__(self, path: str, max_sessions: int = 4, wait_s: float = 5.0) -> None:
        self.path = path
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(max_sessions)

    @contextmanager
    def open(
        self,
        settings: Mapping[str, Any],
        database: str | None = None,
        readonly: bool = True,
    ) -> Iterator[Any]:
        """A fresh session with ``settings`` (then ``readonly = 1`` unless ``readonly`` is off).

        Raises:
            StoreError: too many sessions are open, or a setting or the database is unknown.
        """
        if not self._slots.acquire(timeout=self.wait_s):
            raise StoreError("Too many simultaneous queries (TOO_MANY_SIMULTANEOUS_QUERIES)")
        conn = None
        try:
            for name in settings:
                if not _SETTING_NAME.match(name):
                    raise SettingRefused(f"Unknown setting '{name}'")
            if database and not _DATABASE_NAME.match(database):
                raise StoreError(f"Database {database!r} does not exist (UNKNOWN_DATABASE)")
            conn = chdb.connect(self.path)
            # One SET statement for all of them, readonly last (a query costs ~1.3 ms of CPU
            # whatever it does: one instead of six per reader request)
            changes = [f"{name} = {literal(value)}" for name, value in settings.items()]
            if readonly:
                changes.append("readonly = 1")
            if changes:
                conn.query("SET " + ", ".join(changes))
            if database:
                conn.query(f"USE `{database}`")
            yield conn
        except RuntimeError as exc:  # chDB raises RuntimeError carrying ClickHouse's message
            raise StoreError(str(exc)) from exc
        finally:
            if conn is not None:
                conn.close()
            self._slots.release()
