"""Online metrics read from the SQL views of migrations 0010-0014, and the drift baseline loader.

Every function takes a ``Query`` — ``(sql, params) -> list of row dicts`` — so the same code
runs on a direct client (``client_query(store.connect(dsn))``) and on the collector's query
endpoint while the stack holds the embedded store (``logging_backend.remote``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logging_backend import drift

Query = Callable[[str, "dict[str, Any] | None"], list[dict[str, Any]]]

# Fractions of PSI that the usual rules of thumb call a moderate and a large shift.
PSI_MODERATE = 0.1
PSI_LARGE = 0.25


def client_query(client: Any) -> Query:
    """Wrap a clickhouse-connect client as a ``Query``."""

    def run(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        result = client.query(sql, parameters=params or None)
        return list(result.named_results())

    return run


def _ts(value: datetime) -> str:
    """Format a time as ClickHouse parses it for a DateTime64(6, 'UTC') parameter."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_baseline(
    client: Any,
    baselines: Sequence[drift.FeatureBaseline],
    features_version: str,
    source: str,
    source_sha256: str = "",
) -> int:
    """Insert a feature baseline into ``stagelog.feature_baseline`` (latest load wins).

    Args:
        client: a clickhouse-connect client (direct) — the baseline is loaded at migrate time.
        baselines: one entry per feature, in FEATURES order.
        features_version: the version of the ``features`` stage whose output it describes.
        source: where the baseline came from (file path).
        source_sha256: hash of that file.

    Returns:
        The number of features loaded.
    """
    now = datetime.now(timezone.utc)
    rows = [
        [now, features_version, b.index, b.feature, list(b.edges), list(b.expected), source,
         source_sha256]
        for b in baselines
    ]
    client.insert(
        "stagelog.feature_baseline",
        rows,
        column_names=[
            "loaded_at", "features_version", "feature_index", "feature", "edges", "expected",
            "source", "source_sha256",
        ],
    )
    return len(rows)


def baseline_files(repository: Path) -> list[tuple[str, Path]]:
    """Find ``features/<version>/baseline.json`` in a model repository, as (version, path)."""
    found = []
    for path in sorted((repository / "features").glob("*/baseline.json")):
        found.append((path.parent.name, path))
    return found


def load_baseline_file(client: Any, path: Path, features_version: str) -> int:
    """Read ``path`` (``drift.load_file`` format) and load it; returns the features loaded."""
    data = path.read_bytes()
    baselines = drift.load_file(path)
    return load_baseline(
        client, baselines, features_version, str(path), hashlib.sha256(data).hexdigest()
    )


def feature_psi(query: Query | Any, t_from: datetime, t_to: datetime) -> list[dict[str, Any]]:
    """PSI per feature for values served in ``[t_from, t_to)``, largest first."""
    run = query if callable(query) else client_query(query)
    return run(
        "SELECT features_version, feature_index, feature, rows, psi "
        "FROM stagelog.feature_psi(t_from = {t_from:String}, t_to = {t_to:String}) "
        "ORDER BY psi DESC, feature_index",
        {"t_from": _ts(t_from), "t_to": _ts(t_to)},
    )


@dataclass
class Metrics:
    """Everything ``stagelog metrics`` prints, as rows of dicts."""

    window: tuple[datetime, datetime] | None
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    agreement: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)


def _time_range(run: Query) -> tuple[datetime, datetime] | None:
    rows = run(
        "SELECT min(ts) AS lo, max(ts) AS hi, count() AS n FROM stagelog.predictions "
        "WHERE model = 'aggregate'",
        None,
    )
    if not rows or not int(rows[0]["n"]):
        return None
    return _as_datetime(rows[0]["lo"]), _as_datetime(rows[0]["hi"])


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).replace("T", " ").rstrip("Z")
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def collect(query: Query, drift_minutes: float = 5.0) -> Metrics:
    """Read every metric view.

    Args:
        query: how to run SQL.
        drift_minutes: PSI is computed over the last this many minutes of served traffic.
    """
    from logging_backend import notes

    window = _time_range(query)
    out = Metrics(window=window)
    out.accuracy = query(
        "SELECT model, model_version, labelled_rows, round(accuracy, 4) AS accuracy, "
        "round(log_loss, 4) AS log_loss FROM stagelog.online_accuracy "
        "ORDER BY model = 'aggregate' DESC, model, model_version",
        None,
    )
    out.agreement = query(
        "SELECT count() AS rows, sum(members_agree) AS agreeing_rows, "
        "round(avg(members_agree), 4) AS agreement_rate FROM stagelog.member_agreement",
        None,
    )
    out.decisions = query(
        "SELECT decision, sum(rows) AS rows, round(sum(rows) / sum(sum(rows)) OVER (), 4) "
        "AS share FROM stagelog.decision_mix_1m GROUP BY decision ORDER BY decision",
        None,
    )
    out.outcomes = query(
        "SELECT decision, action, executed, rows FROM stagelog.decision_outcomes "
        "ORDER BY decision, action, executed",
        None,
    )
    out.latency = query(
        "SELECT stage, model_version, requests, errors, round(p50_ms, 3) AS p50_ms, "
        "round(p90_ms, 3) AS p90_ms, round(p99_ms, 3) AS p99_ms, round(max_ms, 3) AS max_ms "
        "FROM stagelog.stage_latency_quantiles ORDER BY stage, model_version",
        None,
    )
    out.unmatched = query(
        "SELECT kind, count() AS reports, uniqExact(request_id) AS request_ids "
        "FROM stagelog.feedback_unmatched GROUP BY kind ORDER BY kind",
        None,
    )
    if window is not None:
        hi = window[1] + timedelta(microseconds=1)
        lo = max(window[0], hi - timedelta(minutes=drift_minutes))
        out.drift = [
            {**row, "psi": round(float(row["psi"]), 4)} for row in feature_psi(query, lo, hi)
        ]
        out.window = (window[0], window[1])
        out.notes = notes.overlapping(query, window[0], window[1])
    return out
