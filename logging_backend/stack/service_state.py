"""The files the supervisor shares with `stagelog status` and `stagelog restart`.

``run/health.json`` (what is down now), ``run/service_events.jsonl`` (the last service events)
and ``run/restart/`` (restart requests). Kept apart from the supervisor so that the launcher
reads them without importing it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from logging_backend import config


def journal_file(settings: config.Settings) -> Path:
    """``run/service_events.jsonl``: the last service events, for `stagelog status`."""
    return (settings.home / "run") / "service_events.jsonl"


def health_file(settings: config.Settings) -> Path:
    """``run/health.json``: what the supervisor last found down (``down``: part names)."""
    return (settings.home / "run") / "health.json"


def requests_dir(settings: config.Settings) -> Path:
    """Where `stagelog restart` leaves requests for the running supervisor."""
    return (settings.home / "run") / "restart"


def read_health(settings: config.Settings) -> dict[str, Any] | None:
    """The supervisor's last health report, or None when there is none."""
    try:
        return json.loads(health_file(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def recent_events(settings: config.Settings, limit: int = 10) -> list[dict[str, Any]]:
    """The last ``limit`` service events of this home (newest last)."""
    try:
        lines = journal_file(settings).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-limit:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
