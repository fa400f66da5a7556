"""`stagelog report`: one self-contained HTML page of what the pipeline did, with plots.

The plots are inline SVG drawn here (no JavaScript, nothing fetched at view time): latency per
stage over time, one request's stage-by-stage waterfall, the prediction, decision and action
mix, feature drift (PSI per feature, and over time for the most drifted ones), then tables of
online accuracy, latency quantiles and the notes that overlap the window.

``collect`` reads the store (any ``metrics.Query``); ``render`` is a pure function of the
collected ``ReportData`` (unit tests call it with made-up data).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from logging_backend.insights import metrics, notes, traffic

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6",
           "#9D755D", "#BAB0AC", "#EECA3B")
CLASS_COLORS = {"legit": "#54A24B", "card_fraud": "#E45756", "account_takeover": "#F58518"}
DECISION_COLORS = {"approve": "#54A24B", "review": "#EECA3B", "decline": "#E45756"}
ERROR_COLOR = "#E45756"
OK_COLORS = tuple(c for c in PALETTE if c != ERROR_COLOR)  # red means a failed stage
STAGE_ORDER = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate", "feedback")
TIME_BUCKETS = 60  # points per latency line
DRIFT_BUCKETS = 6  # ~100 rows per point in the demo: PSI of small samples is noisy


@dataclass
class Span:
    """One stage of one request in the waterfall."""

    stage: str
    start_ms: float
    wall_ms: float
    cpu_ms: float
    status: str
    model_version: str = ""


@dataclass
class ReportData:
    """Everything the page shows."""

    generated_at: datetime
    window: tuple[datetime, datetime] | None
    # stage -> [(time, p50 ms, p99 ms, requests)]
    latency: dict[str, list[tuple[datetime, float, float, int]]] = field(default_factory=dict)
    request_id: str = ""
    waterfall: list[Span] = field(default_factory=list)
    # model -> class -> rows
    prediction_mix: dict[str, dict[str, int]] = field(default_factory=dict)
    decision_mix: dict[str, int] = field(default_factory=dict)
    action_mix: dict[str, int] = field(default_factory=dict)
    drift_minutes: float = 5.0
    drift: list[tuple[str, float]] = field(default_factory=list)
    # feature -> [(time, psi)]
    drift_over_time: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    latency_table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    alerts_firing: list[dict[str, Any]] = field(default_factory=list)
    alert_history: list[dict[str, Any]] = field(default_factory=list)


# Replays ('replay-…') and the supervisor's probes ('stagelog-probe-…') are not production
# traffic: the report leaves them out.
_PRODUCTION = traffic.PRODUCTION


# ----------------------------------------------------------------------------- collecting


def _dt(value: Any) -> datetime:
    return metrics.as_datetime(value)


def _stage_key(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def collect(
    query: metrics.Query,
    request_id: str | None = None,
    since_minutes: float = 60.0,
    drift_minutes: float = 5.0,
) -> ReportData:
    """Read what the report shows from the store.

    Args:
        query: how to run SQL.
        request_id: the request of the waterfall (default: the latest scored one).
        since_minutes: the window of the time plots, ending at the latest stage event.
        drift_minutes: the window of the PSI bars, ending at the latest prediction.
    """
    now = datetime.now(timezone.utc)
    span = query(
        f"SELECT min(ts) AS lo, max(ts) AS hi, count() AS n FROM stagelog.stage_events "
        f"WHERE {_PRODUCTION}", None
    )
    data = ReportData(generated_at=now, window=None, drift_minutes=drift_minutes)
    if not span or not int(span[0]["n"]):
        return data
    hi = _dt(span[0]["hi"])
    lo = max(_dt(span[0]["lo"]), hi - timedelta(minutes=since_minutes))
    data.window = (lo, hi)
    bucket_ms = max(100, math.ceil((hi - lo).total_seconds() * 1000 / TIME_BUCKETS))
    window = {"lo": metrics.ts_param(lo), "hi": metrics.ts_param(hi + timedelta(seconds=1))}
    for row in query(
        "SELECT toStartOfInterval(ts, toIntervalMillisecond({b:UInt32})) AS t, stage, "
        "quantile(0.5)(wall_ms) AS p50, quantile(0.99)(wall_ms) AS p99, count() AS n "
        "FROM stagelog.stage_events "
        "WHERE ts >= toDateTime64({lo:String}, 6, 'UTC') "
        "AND ts < toDateTime64({hi:String}, 6, 'UTC') "
        f"AND {_PRODUCTION} GROUP BY t, stage ORDER BY t",
        {"b": bucket_ms, **window},
    ):
        data.latency.setdefault(row["stage"], []).append(
            (_dt(row["t"]), float(row["p50"]), float(row["p99"]), int(row["n"]))
        )
    data.latency = dict(sorted(data.latency.items(), key=lambda kv: _stage_key(kv[0])))

    if request_id is None:
        latest = query(
            "SELECT request_id FROM stagelog.predictions WHERE model = 'aggregate' "
            f"AND {_PRODUCTION} ORDER BY ts DESC LIMIT 1",
            None,
        )
        request_id = latest[0]["request_id"] if latest else ""
    data.request_id = request_id
    if request_id:
        events = query(
            "SELECT stage, model_version, ts, wall_ms, cpu_ms, status FROM stagelog.stage_events "
            "WHERE request_id = {rid:String} ORDER BY ts",
            {"rid": request_id},
        )
        if events:
            t0 = min(_dt(e["ts"]) for e in events)
            data.waterfall = [
                Span(
                    stage=e["stage"],
                    start_ms=(_dt(e["ts"]) - t0).total_seconds() * 1000.0,
                    wall_ms=float(e["wall_ms"]),
                    cpu_ms=float(e["cpu_ms"]),
                    status=e["status"],
                    model_version=str(e["model_version"]),
                )
                for e in events
            ]

    for row in query(
        "SELECT model, predicted_class, sum(rows) AS n FROM stagelog.prediction_mix_1m "
        "WHERE minute >= toStartOfMinute(toDateTime64({lo:String}, 6, 'UTC')) "
        "GROUP BY model, predicted_class",
        window,
    ):
        data.prediction_mix.setdefault(row["model"], {})[row["predicted_class"]] = int(row["n"])
    data.prediction_mix = dict(sorted(data.prediction_mix.items(),
                                      key=lambda kv: _stage_key(kv[0])))
    for row in query(
        "SELECT decision, sum(rows) AS n FROM stagelog.decision_mix_1m "
        "WHERE minute >= toStartOfMinute(toDateTime64({lo:String}, 6, 'UTC')) GROUP BY decision",
        window,
    ):
        data.decision_mix[row["decision"]] = int(row["n"])
    for row in query(
        "SELECT action, count() AS n FROM stagelog.actions_latest GROUP BY action ORDER BY action",
        None,
    ):
        data.action_mix[row["action"]] = int(row["n"])

    metrics.ensure_baseline(query)
    pred_span = query(
        "SELECT min(ts) AS lo, max(ts) AS hi, count() AS n FROM stagelog.predictions "
        f"WHERE model = 'aggregate' AND {_PRODUCTION}",
        None,
    )
    if pred_span and int(pred_span[0]["n"]):
        p_hi = _dt(pred_span[0]["hi"]) + timedelta(microseconds=1)
        # From the first stage event: `features` logs a request's rows before `aggregate`.
        p_lo = min(_dt(pred_span[0]["lo"]), lo)
        recent = metrics.feature_psi(query, p_hi - timedelta(minutes=drift_minutes), p_hi)
        data.drift = [(r["feature"], r["psi"]) for r in recent]
        top = [name for name, _ in data.drift[:3]]
        step = max((p_hi - p_lo) / DRIFT_BUCKETS, timedelta(milliseconds=200))
        t = p_lo
        while t < p_hi and top:
            rows = {r["feature"]: r for r in metrics.feature_psi(query, t, t + step)}
            for name in top:
                if name in rows:
                    data.drift_over_time.setdefault(name, []).append((t + step / 2,
                                                                      rows[name]["psi"]))
            t += step

    data.accuracy = query(
        "SELECT model, model_version, labelled_rows, round(accuracy, 4) AS accuracy, "
        "round(log_loss, 4) AS log_loss FROM stagelog.online_accuracy "
        "ORDER BY model = 'aggregate' DESC, model, model_version",
        None,
    )
    data.latency_table = sorted(
        query(
            "SELECT stage, model_version, requests, errors, round(p50_ms, 3) AS p50_ms, "
            "round(p90_ms, 3) AS p90_ms, round(p99_ms, 3) AS p99_ms "
            "FROM stagelog.stage_latency_quantiles",
            None,
        ),
        key=lambda r: (_stage_key(r["stage"]), str(r["model_version"])),
    )
    data.notes = notes.overlapping(query, lo, hi)
    data.alerts_firing = metrics.alerts_firing(query)
    data.alert_history = metrics.alert_history(query, limit=50)
    return data


# ----------------------------------------------------------------------------- drawing

_W, _H = 760, 300
_M = {"left": 64, "right": 150, "top": 16, "bottom": 40}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _y_axis(y_max: float, plot_h: float, plot_w: float, label: str) -> list[str]:
    out = []
    for i in range(5):
        v = y_max * i / 4
        y = _M["top"] + plot_h - plot_h * i / 4
        out.append(f'<line x1="{_M["left"]}" x2="{_M["left"] + plot_w}" y1="{y:.1f}" '
                   f'y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{_M["left"] - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11">{_fmt(v)}</text>')
    out.append(f'<text x="14" y="{_M["top"] + plot_h / 2:.1f}" font-size="11" '
               f'transform="rotate(-90 14 {_M["top"] + plot_h / 2:.1f})" '
               f'text-anchor="middle">{_e(label)}</text>')
    return out


def _legend(names: Sequence[str], colors: Sequence[str], x: float) -> list[str]:
    out = []
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = _M["top"] + 8 + i * 18
        out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 1}" font-size="12">{_e(name)}</text>')
    return out


def _svg(element_id: str, title: str, body: list[str], height: int = _H) -> str:
    return (
        f'<svg id="{_e(element_id)}" class="plot" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" font-family="sans-serif">'
        f"<title>{_e(title)}</title>" + "".join(body) + "</svg>"
    )


def line_chart(
    element_id: str,
    title: str,
    series: dict[str, list[tuple[datetime, float]]],
    y_label: str,
    thresholds: Sequence[tuple[float, str]] = (),
) -> str:
    """Lines over time, one per series, with a legend; horizontal dashed threshold lines."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return _empty(element_id, title)
    t_min = min(t for t, _ in points)
    t_max = max(t for t, _ in points)
    span = max((t_max - t_min).total_seconds(), 1.0)
    y_max = _nice_max(max([v for _, v in points] + [t for t, _ in thresholds]))
    plot_w = _W - _M["left"] - _M["right"]
    plot_h = _H - _M["top"] - _M["bottom"]

    def xy(t: datetime, v: float) -> tuple[float, float]:
        x = _M["left"] + plot_w * (t - t_min).total_seconds() / span
        y = _M["top"] + plot_h - plot_h * min(v, y_max) / y_max
        return x, y

    body = _y_axis(y_max, plot_h, plot_w, y_label)
    for i in range(5):
        t = t_min + timedelta(seconds=span * i / 4)
        x, _ = xy(t, 0)
        body.append(f'<text x="{x:.1f}" y="{_H - _M["bottom"] + 16}" text-anchor="middle" '
                    f'font-size="11">{t:%H:%M:%S}</text>')
    for value, label in thresholds:
        _, y = xy(t_min, value)
        body.append(f'<line x1="{_M["left"]}" x2="{_M["left"] + plot_w}" y1="{y:.1f}" '
                    f'y2="{y:.1f}" stroke="#999" stroke-dasharray="4 3"/>')
        body.append(f'<text x="{_M["left"] + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" '
                    f'font-size="10" fill="#666">{_e(label)}</text>')
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    for (name, pts), color in zip(series.items(), colors, strict=True):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in sorted(pts)))
        body.append(f'<polyline class="series" data-series="{_e(name)}" fill="none" '
                    f'stroke="{color}" stroke-width="2" points="{coords}"/>')
        if len(pts) == 1:
            x, y = xy(*pts[0])
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    body += _legend(list(series), colors, _W - _M["right"] + 12)
    return _svg(element_id, title, body)


def bar_chart(
    element_id: str,
    title: str,
    items: Sequence[tuple[str, float]],
    x_label: str,
    thresholds: Sequence[tuple[float, str]] = (),
    colors: dict[str, str] | None = None,
) -> str:
    """Horizontal bars, one per item, values printed at the bar ends."""
    if not items:
        return _empty(element_id, title)
    row_h = 20
    left = 210
    height = _M["top"] + row_h * len(items) + _M["bottom"] + 8
    plot_w = _W - left - 60
    x_max = _nice_max(max([v for _, v in items] + [t for t, _ in thresholds]))
    body = []
    for i, (name, value) in enumerate(items):
        y = _M["top"] + i * row_h
        w = plot_w * max(value, 0.0) / x_max
        color = (colors or {}).get(name, PALETTE[0])
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" '
                    f'font-size="12">{_e(name)}</text>')
        body.append(f'<rect class="bar" data-name="{_e(name)}" x="{left}" y="{y + 3}" '
                    f'width="{w:.1f}" height="{row_h - 6}" fill="{color}"/>')
        body.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">'
                    f"{_fmt(value)}</text>")
    bottom = _M["top"] + row_h * len(items)
    for i, (value, label) in enumerate(thresholds):
        x = left + plot_w * value / x_max
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_M["top"]}" y2="{bottom}" '
                    f'stroke="#999" stroke-dasharray="4 3"/>')
        # Alternate rows, so that close thresholds do not print over each other.
        body.append(f'<text x="{x:.1f}" y="{bottom + 12 + 11 * (i % 2)}" text-anchor="start" '
                    f'font-size="10" fill="#666">{_e(label)}</text>')
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'font-size="11">{_e(x_label)}</text>')
    return _svg(element_id, title, body, height=height)


def stacked_shares(
    element_id: str,
    title: str,
    groups: dict[str, dict[str, int]],
    colors: dict[str, str],
) -> str:
    """One horizontal 100 % bar per group, split by category share."""
    groups = {g: parts for g, parts in groups.items() if sum(parts.values())}
    if not groups:
        return _empty(element_id, title)
    categories = list(dict.fromkeys([*colors, *(c for p in groups.values() for c in p)]))
    palette = {c: colors.get(c, PALETTE[i % len(PALETTE)]) for i, c in enumerate(categories)}
    row_h, left = 28, 110
    plot_w = _W - left - _M["right"]
    height = _M["top"] + row_h * len(groups) + _M["bottom"]
    body = []
    for i, (group, parts) in enumerate(groups.items()):
        y = _M["top"] + i * row_h
        total = sum(parts.values())
        body.append(f'<text x="{left - 6}" y="{y + 18}" text-anchor="end" '
                    f'font-size="12">{_e(group)}</text>')
        x = float(left)
        for category in categories:
            n = parts.get(category, 0)
            if not n:
                continue
            w = plot_w * n / total
            body.append(
                f'<rect class="share" data-group="{_e(group)}" data-category="{_e(category)}" '
                f'x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{palette[category]}"><title>{_e(group)} {_e(category)}: {n} '
                f"({100 * n / total:.1f} %)</title></rect>"
            )
            if w > 34:
                body.append(f'<text x="{x + w / 2:.1f}" y="{y + 18}" text-anchor="middle" '
                            f'font-size="10" fill="#fff">{100 * n / total:.0f}%</text>')
            x += w
    used = [c for c in categories if any(c in p for p in groups.values())]
    body += _legend(used, [palette[c] for c in used], _W - _M["right"] + 12)
    return _svg(element_id, title, body, height=max(height, _M["top"] + 20 * len(used) + 10))


def waterfall(element_id: str, title: str, spans: Sequence[Span]) -> str:
    """One bar per stage of one request, from its start offset, length = wall time."""
    if not spans:
        return _empty(element_id, title)
    row_h, left = 24, 150
    plot_w = _W - left - 90
    height = _M["top"] + row_h * len(spans) + _M["bottom"]
    end = max(s.start_ms + s.wall_ms for s in spans)
    x_max = _nice_max(end)
    body = []
    for i in range(5):
        x = left + plot_w * i / 4
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_M["top"]}" '
                    f'y2="{height - _M["bottom"]}" stroke="#eee"/>')
        body.append(f'<text x="{x:.1f}" y="{height - _M["bottom"] + 14}" text-anchor="middle" '
                    f'font-size="11">{_fmt(x_max * i / 4)}</text>')
    for i, s in enumerate(spans):
        y = _M["top"] + i * row_h
        x = left + plot_w * s.start_ms / x_max
        w = max(plot_w * s.wall_ms / x_max, 1.0)
        color = ERROR_COLOR if s.status != "ok" else OK_COLORS[i % len(OK_COLORS)]
        label = s.stage + (f" v{s.model_version}" if s.model_version else "")
        body.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" '
                    f'font-size="12">{_e(label)}</text>')
        body.append(
            f'<rect class="span" data-stage="{_e(s.stage)}" x="{x:.1f}" y="{y + 4}" '
            f'width="{w:.1f}" height="{row_h - 8}" fill="{color}"><title>{_e(s.stage)}: '
            f"start {s.start_ms:.3f} ms, wall {s.wall_ms:.3f} ms, cpu {s.cpu_ms:.3f} ms, "
            f"{_e(s.status)}</title></rect>"
        )
        body.append(f'<text x="{x + w + 4:.1f}" y="{y + 16}" font-size="11">'
                    f"{s.wall_ms:.2f} ms</text>")
    body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'font-size="11">ms since the request reached its first stage</text>')
    return _svg(element_id, title, body, height=height)


def _empty(element_id: str, title: str) -> str:
    body = [f'<text x="{_W / 2}" y="40" text-anchor="middle" font-size="13" fill="#888">'
            "no data yet</text>"]
    return _svg(element_id, title, body, height=60)


def _html_table(element_id: str, rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return f'<p id="{_e(element_id)}" class="empty">no data yet</p>'
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_e('' if v is None else v)}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return (
        f'<table id="{_e(element_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


_CSS = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
section { margin-bottom: 12px; } .meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; } .empty { color: #888; }
ul.notes li { margin-bottom: 6px; }
pre.body { background: #f6f6f6; padding: 6px; font-size: 12px; white-space: pre-wrap; }
"""


def render(data: ReportData) -> str:
    """The whole page as one HTML string (no external resources)."""
    window = (
        f"{data.window[0]:%Y-%m-%d %H:%M:%S} – {data.window[1]:%H:%M:%S} UTC"
        if data.window else "no traffic logged yet"
    )
    latency_series = {
        stage: [(t, p50) for t, p50, _, _ in pts] for stage, pts in data.latency.items()
    }
    drift_items = data.drift[:15]
    note_items = "".join(
        f'<li class="note" data-kind="{_e(n["kind"])}">{_e(line)}'
        + (f'<pre class="body">{_e(n["body"])}</pre>' if n.get("body") else "")
        + "</li>"
        for n, line in zip(data.notes, notes.format_lines(data.notes), strict=True)
    )
    sections = [
        ("latency", "Latency per stage over time (p50 wall ms)",
         line_chart("latency-chart", "p50 wall time per stage", latency_series, "ms")),
        ("waterfall", f"One request, stage by stage: {data.request_id or 'none yet'}",
         waterfall("waterfall-chart", "stage waterfall", data.waterfall)),
        ("mix", "Prediction mix per model, decision mix, reported actions",
         stacked_shares("prediction-mix-chart", "predicted class share per model",
                        data.prediction_mix, CLASS_COLORS)
         + stacked_shares("decision-mix-chart", "decision share",
                          {"decisions": data.decision_mix} if data.decision_mix else {},
                          DECISION_COLORS)
         + stacked_shares("action-mix-chart", "reported actions",
                          {"actions": data.action_mix} if data.action_mix else {},
                          DECISION_COLORS)),
        ("drift", f"Feature drift: PSI vs. the training baseline, last {data.drift_minutes:g} min",
         bar_chart("drift-chart", "PSI per feature", drift_items, "PSI",
                   thresholds=((metrics.PSI_MODERATE, "0.1 moderate"),
                               (metrics.PSI_LARGE, "0.25 large")))
         + line_chart("drift-time-chart", "PSI over time, most drifted features",
                      data.drift_over_time, "PSI",
                      thresholds=((metrics.PSI_LARGE, "0.25"),))),
        ("accuracy", "Online accuracy and log-loss (rows with a label)",
         _html_table("accuracy-table", data.accuracy)),
        ("latency-quantiles", "Latency quantiles per stage (ms)",
         _html_table("latency-table", data.latency_table)),
        ("alerts", "Alerts: rules firing now and the latest transitions",
         (_html_table("alerts-firing-table", data.alerts_firing) if data.alerts_firing
          else '<p id="alerts-firing-table" class="empty">no rule is firing</p>')
         + _html_table("alerts-history-table", data.alert_history)),
        ("notes", "Notes overlapping this window",
         f'<ul id="notes-list" class="notes">{note_items}</ul>' if note_items
         else '<p id="notes-list" class="empty">no notes</p>'),
    ]
    body = "".join(
        f'<section id="{_e(sid)}"><h2>{_e(title)}</h2>{content}</section>'
        for sid, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
        "<title>stagelog report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>stagelog report</h1>"
        f'<p class="meta" id="report-meta">window {_e(window)} · generated '
        f"{data.generated_at:%Y-%m-%d %H:%M:%S} UTC</p>"
        f"{body}</body></html>\n"
    )
