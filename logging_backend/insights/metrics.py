"""Online metrics read from the SQL views of migrations 0010-0014, and the drift baseline loader.

Every function takes a ``Query`` — ``(sql, params) -> list of row dicts`` — so the same code
runs on a direct client (``client_query(store.connect(dsn))``) and on the collector's query
endpoint while the stack holds the embedded store (``logging_backend.stack.query.settings_query``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logging_backend import config, store
from logging_backend.insights import drift, notes, traffic

Query = Callable[[str, "dict[str, Any] | None"], list[dict[str, Any]]]

# Fractions of PSI that the usual rules of thumb call a moderate and a large shift.
PSI_MODERATE = 0.1
PSI_LARGE = 0.25


def parse_rows(result: bytes) -> list[dict[str, Any]]:
    """Rows of a ``JSONEachRow`` result."""
    text = result.decode("utf-8", errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def client_query(client: Any) -> Query:
    """Wrap an open clickhouse-connect client as a ``Query``.

    Rows come back as ClickHouse's ``JSONEachRow`` gives them (64-bit integers and times as
    strings), exactly as through the collector's endpoint, so callers see one set of types.
    """
    def run(sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return parse_rows(store.run_query(client, sql, params, "JSONEachRow"))

    return run


def ts_param(value: datetime) -> str:
    """Format a time as ClickHouse parses it for a DateTime64(6, 'UTC') parameter."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_baseline(
    query: Query,
    baselines: Sequence[drift.FeatureBaseline],
    features_version: str,
    source: str,
    source_sha256: str = "",
) -> int:
    """Insert a feature baseline into ``stagelog.feature_baseline`` (the latest load wins).

    Args:
        query: how to run SQL (one INSERT for all features).
        baselines: one entry per feature.
        features_version: the version of the ``features`` stage whose output it describes.
        source: where the baseline came from (file path).
        source_sha256: hash of that file.

    Returns:
        The number of features loaded.
    """
    query(
        "INSERT INTO stagelog.feature_baseline (loaded_at, features_version, feature_index, "
        "feature, edges, expected, source, source_sha256) "
        "SELECT now64(6), {version:String}, f.1, f.2, f.3, f.4, {source:String}, {sha:String} "
        "FROM (SELECT arrayJoin(arrayZip({index:Array(UInt16)}, {names:Array(String)}, "
        "{edges:Array(Array(Float64))}, {expected:Array(Array(Float64))})) AS f)",
        {
            "version": features_version,
            "source": source,
            "sha": source_sha256,
            "index": [b.index for b in baselines],
            "names": [b.feature for b in baselines],
            "edges": [list(b.edges) for b in baselines],
            "expected": [list(b.expected) for b in baselines],
        },
    )
    return len(baselines)


def baseline_files(repository: Path) -> list[tuple[str, Path]]:
    """Find ``features/<version>/baseline.json`` in a model repository, as (version, path)."""
    found = []
    for path in sorted((repository / "features").glob("*/baseline.json")):
        found.append((path.parent.name, path))
    return found


def load_baseline_file(query: Query, path: Path, features_version: str) -> int:
    """Read ``path`` (``drift.from_mapping`` format) and load it; returns the features loaded.

    The file's feature order is the served layout (``training.train`` writes it in the order of
    the features stage's output).
    """
    data = path.read_bytes()
    baselines = drift.load_file(path)
    return load_baseline(
        query, baselines, features_version, str(path), hashlib.sha256(data).hexdigest()
    )


def ensure_baseline(query: Query, repository: Path | None = None, force: bool = False) -> int:
    """Load every ``features/<v>/baseline.json`` of the model repository unless loaded already.

    Args:
        query: how to run SQL.
        repository: the model repository (default: the one `stagelog up` serves).
        force: load again even when a baseline of that version is in the table.

    Returns:
        Features loaded now (0 when everything was there).
    """
    repo = repository or config.REPO_ROOT / "model_repository"
    loaded = {
        str(r["features_version"])
        for r in query("SELECT DISTINCT features_version FROM stagelog.feature_baseline", None)
    }
    count = 0
    for version, path in baseline_files(repo):
        if force or version not in loaded:
            count += load_baseline_file(query, path, version)
    return count


def feature_psi(query: Query, t_from: datetime, t_to: datetime) -> list[dict[str, Any]]:
    """PSI per feature for values served in ``[t_from, t_to)``, largest first."""
    rows = query(
        "SELECT features_version, feature_index, feature, rows, psi "
        "FROM stagelog.feature_psi(t_from = {t_from:String}, t_to = {t_to:String}) "
        "ORDER BY psi DESC, feature_index",
        {"t_from": ts_param(t_from), "t_to": ts_param(t_to)},
    )
    return [
        {**r, "feature_index": int(r["feature_index"]), "rows": int(r["rows"]),
         "psi": float(r["psi"])}
        for r in rows
    ]


@dataclass
class Metrics:
    """Everything ``stagelog metrics`` prints, as rows of dicts."""

    window: tuple[datetime, datetime] | None
    drift_minutes: float = 5.0
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    agreement: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_history: list[dict[str, Any]] = field(default_factory=list)


ALERTS_FIRING_SQL = (
    "SELECT rule, severity, round(value, 4) AS value, round(threshold, 4) AS threshold, "
    "toString(since) AS since, message FROM stagelog.alerts_current WHERE state = 'firing' "
    "ORDER BY severity = 'critical' DESC, since"
)
ALERT_HISTORY_SQL = (
    "SELECT toString(ts) AS ts, rule, state, severity, round(value, 4) AS value, message "
    "FROM stagelog.alerts ORDER BY ts DESC LIMIT {limit:UInt32}"
)


def alerts_firing(query: Query) -> list[dict[str, Any]]:
    """The alert rules firing now (their last transition is ``firing``)."""
    return query(ALERTS_FIRING_SQL, None)


def alert_history(query: Query, limit: int = 10) -> list[dict[str, Any]]:
    """The latest alert transitions, newest first."""
    return query(ALERT_HISTORY_SQL, {"limit": limit})


def _time_range(run: Query) -> tuple[datetime, datetime] | None:
    rows = run(
        "SELECT min(ts) AS lo, max(ts) AS hi, count() AS n FROM stagelog.predictions "
        f"WHERE model = 'aggregate' AND {traffic.PRODUCTION}",
        None,
    )
    if not rows or not int(rows[0]["n"]):
        return None
    return as_datetime(rows[0]["lo"]), as_datetime(rows[0]["hi"])


def as_datetime(value: Any) -> datetime:
    """Parse a time as a row gives it (datetime, or ClickHouse's JSON text), as UTC."""
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
    window = _time_range(query)
    out = Metrics(window=window, drift_minutes=drift_minutes)
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
        "SELECT decision, sum(m.rows) AS n, round(n / sum(n) OVER (), 4) AS share "
        "FROM stagelog.decision_mix_1m AS m GROUP BY decision ORDER BY decision",
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
    out.alerts = alerts_firing(query)
    out.alert_history = alert_history(query)
    if window is not None:
        # Not clamped to the first prediction: `features` logs its rows before `aggregate`.
        hi = window[1] + timedelta(microseconds=1)
        lo = hi - timedelta(minutes=drift_minutes)
        out.drift = [
            {**row, "psi": round(float(row["psi"]), 4)} for row in feature_psi(query, lo, hi)
        ]
        out.notes = notes.overlapping(query, window[0], window[1])
    return out
