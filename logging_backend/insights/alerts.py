"""Alerts: rules over the metric views, evaluated on a schedule, transitions in ``stagelog.alerts``.

A rule (``alert_rules.toml`` next to this module, or the file named by ``STAGELOG_ALERT_RULES``)
is a SQL query over the views that exist (accuracy, log-loss, PSI, error rate, p99 latency,
member disagreement, shipping lag, dropped rows), run with ``{t_from}``/``{t_to}`` bound to its
window, and a condition on the ``value`` it returns: a threshold (``above``/``below``) or a
baseline (the same query over the ``baseline`` windows before: mean ± ``k`` σ). The file's
header documents every key.

``Evaluator.run_once`` evaluates every rule and writes one row per *transition* — ``firing``
when a rule's condition starts to hold, ``resolved`` when it stops — so the table is short and
each row is news. The state it starts from is read back from ``stagelog.alerts_current``, so a
restarted collector does not fire again what is already firing. ``AlertThread`` runs it every
``STAGELOG_ALERT_INTERVAL_MS`` in the process that owns the store (the collector).
"""

from __future__ import annotations

import logging
import math
import socket
import statistics
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from logging_backend.errors import StagelogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger("stagelog.alerts")

Query = Callable[[str, "dict[str, Any] | None"], list[dict[str, Any]]]
DEFAULT_RULES = Path(__file__).with_name("alert_rules.toml")
SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = ("above", "below", "outside")
DEFAULT_INTERVAL_MS = 60_000  # Prometheus's default evaluation_interval (1m)
MIN_BASELINE_WINDOWS = 3
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AlertRuleError(StagelogError):
    """Raised when an alert rules file or one of its rules cannot be used."""


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the header of ``alert_rules.toml``)."""

    name: str
    sql: str
    window_s: int
    severity: str = "warning"
    above: float | None = None
    below: float | None = None
    baseline: int = 0
    k: float = 3.0
    direction: str = "above"
    min_rows: int = 0
    description: str = ""


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation of a rule found."""

    rule: Rule
    value: float | None
    threshold: float | None
    firing: bool
    message: str


def parse_window(text: Any, rule: str = "?") -> int:
    """``"10m"`` -> 600 seconds (units s, m, h, d; a bare number is seconds)."""
    raw = str(text).strip()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise AlertRuleError(f"rule {rule!r}: window {text!r} is not like 30s, 10m, 1h") from None
    if seconds < 1:
        raise AlertRuleError(f"rule {rule!r}: window {text!r} must be at least 1s")
    return int(seconds)


def _float(doc: dict[str, Any], key: str, name: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AlertRuleError(f"rule {name!r}: {key} must be a number, got {value!r}")
    return float(value)


def rule_from_mapping(doc: dict[str, Any]) -> Rule:
    """Build and check one rule from a TOML table.

    Raises:
        AlertRuleError: a key is missing, unknown or of the wrong kind.
    """
    known = {"name", "sql", "window", "severity", "above", "below", "baseline", "k",
             "direction", "min_rows", "description"}
    name = str(doc.get("name", "")).strip()
    if not name:
        raise AlertRuleError("a rule has no name")
    unknown = sorted(set(doc) - known)
    if unknown:
        raise AlertRuleError(f"rule {name!r}: unknown keys {unknown}")
    sql = str(doc.get("sql", "")).strip()
    if not sql:
        raise AlertRuleError(f"rule {name!r}: no sql")
    severity = str(doc.get("severity", "warning"))
    if severity not in SEVERITIES:
        raise AlertRuleError(f"rule {name!r}: severity must be one of {SEVERITIES}")
    direction = str(doc.get("direction", "above"))
    if direction not in DIRECTIONS:
        raise AlertRuleError(f"rule {name!r}: direction must be one of {DIRECTIONS}")
    baseline = int(doc.get("baseline", 0))
    above, below = _float(doc, "above", name), _float(doc, "below", name)
    if baseline < 0 or (baseline and baseline < MIN_BASELINE_WINDOWS):
        raise AlertRuleError(f"rule {name!r}: baseline needs >= {MIN_BASELINE_WINDOWS} windows")
    if not baseline and above is None and below is None:
        raise AlertRuleError(f"rule {name!r}: give above, below or baseline")
    return Rule(
        name=name,
        sql=sql,
        window_s=parse_window(doc.get("window", "5m"), name),
        severity=severity,
        above=above,
        below=below,
        baseline=baseline,
        k=float(_float(doc, "k", name) or 3.0),
        direction=direction,
        min_rows=int(doc.get("min_rows", 0)),
        description=str(doc.get("description", "")),
    )


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Read a rules file (default: the shipped rule set; ``Settings.alert_rules`` names another).

    Raises:
        AlertRuleError: the file cannot be read or parsed, a rule is wrong, or names repeat.
    """
    target = Path(path or DEFAULT_RULES)
    try:
        doc = tomllib.loads(target.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AlertRuleError(f"alert rules {target}: {exc}") from exc
    rules = [rule_from_mapping(item) for item in doc.get("rule", [])]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise AlertRuleError(f"alert rules {target}: rule names repeat: {names}")
    return rules


def _ts(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def measure(query: Query, rule: Rule, t_to: datetime) -> tuple[float | None, dict[str, Any]]:
    """Run the rule's query over ``[t_to - window, t_to)``: its value (None: no data) and row."""
    t_from = t_to - timedelta(seconds=rule.window_s)
    rows = query(rule.sql, {"t_from": _ts(t_from), "t_to": _ts(t_to)})
    if not rows:
        return None, {}
    row = rows[0]
    value = row.get("value")
    if value is None or (rule.min_rows and float(row.get("n") or 0) < rule.min_rows):
        return None, row
    value = float(value)
    return (None if math.isnan(value) else value), row


def evaluate(query: Query, rule: Rule, now: datetime) -> Evaluation:
    """Evaluate one rule at ``now``."""
    value, row = measure(query, rule, now)
    extra = {k: v for k, v in row.items() if k not in ("value", "n")}
    where = "".join(f" {k}={v}" for k, v in extra.items())
    if value is None:
        return Evaluation(rule, None, None, False, f"{rule.name}: no data in the window")
    if rule.baseline:
        history = []
        for i in range(1, rule.baseline + 1):
            past, _ = measure(query, rule, now - timedelta(seconds=i * rule.window_s))
            if past is not None:
                history.append(past)
        if len(history) < MIN_BASELINE_WINDOWS or statistics.pstdev(history) == 0:
            return Evaluation(rule, value, None, False,
                              f"{rule.name}: {value:.4g} (baseline not ready)")
        mean, sigma = statistics.fmean(history), statistics.pstdev(history)
        high, low = mean + rule.k * sigma, mean - rule.k * sigma
        firing = {
            "above": value > high, "below": value < low, "outside": not low <= value <= high
        }[rule.direction]
        threshold = low if rule.direction == "below" else high
        return Evaluation(rule, value, threshold, firing,
                          f"{rule.name}: {value:.4g} vs baseline {mean:.4g} ± {rule.k:g}σ "
                          f"({sigma:.3g}) of {len(history)} windows{where}")
    if rule.above is not None and value > rule.above:
        return Evaluation(rule, value, rule.above, True,
                          f"{rule.name}: {value:.4g} > {rule.above:g}{where}")
    if rule.below is not None and value < rule.below:
        return Evaluation(rule, value, rule.below, True,
                          f"{rule.name}: {value:.4g} < {rule.below:g}{where}")
    threshold = rule.above if rule.above is not None else rule.below
    return Evaluation(rule, value, threshold, False, f"{rule.name}: {value:.4g} ok{where}")


def current_states(query: Query) -> dict[str, str]:
    """The last state of every rule that ever transitioned (``firing`` or ``resolved``)."""
    return {str(r["rule"]): str(r["state"])
            for r in query("SELECT rule, state FROM stagelog.alerts_current", None)}


def record(query: Query, evaluation: Evaluation, state: str, now: datetime,
           host: str | None = None) -> None:
    """Insert one transition into ``stagelog.alerts``."""
    rule = evaluation.rule
    query(
        "INSERT INTO stagelog.alerts (ts, id, rule, severity, state, value, threshold, window_s, "
        "message, host) SELECT toDateTime64({ts:String}, 6, 'UTC'), {id:String}, "
        "{rule:String}, {severity:String}, {state:String}, {value:Nullable(Float64)}, "
        "{threshold:Nullable(Float64)}, {window_s:UInt32}, {message:String}, {host:String}",
        {
            "ts": _ts(now),
            "id": str(uuid.uuid4()),
            "rule": rule.name,
            "severity": rule.severity,
            "state": state,
            "value": evaluation.value,
            "threshold": evaluation.threshold,
            "window_s": rule.window_s,
            "message": evaluation.message,
            "host": host or socket.gethostname(),
        },
    )


class Evaluator:
    """Evaluates a rule set and records transitions.

    Args:
        query: how to run SQL on the store.
        rules: the rules; None reads them with ``load_rules(rules_path)`` on every run (edits
            apply).
        rules_path: the rules file when ``rules`` is None (default: the shipped rule set).
    """

    def __init__(
        self, query: Query, rules: Sequence[Rule] | None = None,
        rules_path: str | Path | None = None,
    ) -> None:
        self.query = query
        self.rules = rules
        self.rules_path = rules_path
        self.states: dict[str, str] | None = None

    def run_once(self, now: datetime | None = None) -> list[tuple[str, str, Evaluation]]:
        """Evaluate every rule once; returns the transitions written as (rule, state, eval).

        A rule whose query fails is logged and skipped; the others still run.
        """
        now = now or datetime.now(timezone.utc)
        rules = list(self.rules) if self.rules is not None else load_rules(self.rules_path)
        if self.states is None:
            self.states = current_states(self.query)
        changed = []
        for rule in rules:
            try:
                found = evaluate(self.query, rule, now)
            except Exception as exc:  # a broken rule must not stop the others
                log.warning("alert rule %s failed: %s", rule.name, exc)
                continue
            was_firing = self.states.get(rule.name) == "firing"
            if found.firing != was_firing:
                state = "firing" if found.firing else "resolved"
                record(self.query, found, state, now)
                self.states[rule.name] = state
                changed.append((rule.name, state, found))
                log.log(logging.WARNING if found.firing else logging.INFO,
                        "alert %s %s: %s", rule.name, state, found.message)
        return changed


class AlertThread:
    """Runs an ``Evaluator`` every ``interval_s`` on a daemon thread until ``stop()``.

    Args:
        query: how to run SQL on the store (the collector passes its own, serialised with
            shipping).
        interval_s: evaluation period (the collector passes ``Settings.alert_interval_ms``);
            at least 0.1 s.
        prepare: called once on the thread before the first evaluation (e.g. loading the drift
            baseline); its errors are logged.
        rules_path: the rules file, re-read on every run (default: the shipped rule set).
        before_each: called on the thread before every evaluation (the collector brings the
            latency rollup up to date); its errors are logged and the rules evaluated anyway.
    """

    def __init__(
        self, query: Query, interval_s: float = DEFAULT_INTERVAL_MS / 1000,
        prepare: Callable[[], object] | None = None,
        rules_path: str | Path | None = None,
        before_each: Callable[[], object] | None = None,
    ) -> None:
        self.evaluator = Evaluator(query, rules_path=rules_path)
        self.interval_s = max(interval_s, 0.1)
        self.prepare = prepare
        self.before_each = before_each
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stagelog-alerts", daemon=True)

    def start(self) -> AlertThread:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        if self.prepare is not None:
            try:
                self.prepare()
            except Exception as exc:
                log.warning("alerts: preparing failed: %s", exc)
        while not self._stop.wait(self.interval_s):
            if self.before_each is not None:
                try:
                    self.before_each()
                except Exception as exc:
                    log.warning("alerts: bringing the rollups up to date failed: %s", exc)
            try:
                self.evaluator.run_once()
            except Exception as exc:  # logged, retried next period; never raised into shipping
                log.warning("alerts: evaluation failed: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
