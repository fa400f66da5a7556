"""Demo step: actions, labels, notes, drift, online metrics and the HTML report.

Called by ``clients/demo.py`` once the stack serves. It imports an experiment plan as a note,
scores a calm phase and then a drift phase of generated events (the generator's ``drift``
knob) — waiting for the `feature_drift` alert to fire, then scoring calm traffic until it
resolves — reports the action taken for most rows and the true label for half of them through the
`feedback` model, notes when the drift began, waits until everything is in ClickHouse, then
prints ``stagelog metrics``, PSI per phase, and writes ``stagelog report``.

Alone: ``python -m clients.demo_feedback [--home DIR] [--keep-running]`` starts a stack (or uses
the one running in the home), runs this step and stops what it started.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import tritonclient.grpc as grpcclient
import typer
from rich.console import Console
from rich.table import Table

from clients import demo_alerts, demo_stack
from clients import feedback as fb
from clients.score import score_batch
from logging_backend import config
from logging_backend.errors import StagelogError
from logging_backend.insights import metrics, notes, report
from logging_backend.stack import launcher
from logging_backend.stack import query as stack_query
from logging_backend.stack.cli.insights import print_metrics
from training.generator import generate

BATCH = 25
PACE_S = 0.4  # between requests, so that the report's time plots have a shape
LAND_TIMEOUT_S = 60.0
ALERT_TIMEOUT_S = 60.0
PLAN = """# Demo: does the ensemble hold up when the merchant mix shifts?

- From: {start}
- Tags: demo, drift
- Kind: experiment

## Scope
Calm traffic first, then traffic from the generator with drift = 1.0 (legit amounts x e^0.4,
ip_risk + 0.25 Beta(2, 2), half of legit events moved to online digital goods / retail).

## Assumptions
Labels arrive for half of the rows; callers follow the decision except for some declines.

## Success
PSI of ip_risk and log_amount_eur above 0.25 during the drift phase, below 0.1 before it.
"""


def _phase(
    client: grpcclient.InferenceServerClient, n: int, seed: int, drift: float, name: str
) -> list[tuple[str, int, str, str]]:
    """Score one phase; returns (request_id, row, decision, true label) per event."""
    items = generate(n, seed, drift=drift)
    out = []
    for start in range(0, n, BATCH):
        chunk = items[start : start + BATCH]
        rid = f"demo-{name}-{start // BATCH}-{uuid.uuid4().hex[:6]}"
        result = score_batch(client, [i.event for i in chunk], rid)
        out += [(rid, row, result.decisions[row], item.label) for row, item in enumerate(chunk)]
        time.sleep(PACE_S)
    return out


def _report_feedback(
    client: grpcclient.InferenceServerClient, served: list[tuple[str, int, str, str]]
) -> tuple[int, int]:
    """Actions for 80 % of rows (every 7th decline not carried out), labels for half."""
    actions, labels = [], []
    for index, (rid, row, decision, label) in enumerate(served):
        if index % 5:
            detail = {"executed": False} if decision == "decline" and index % 7 == 0 else None
            actions.append(fb.FeedbackReport(rid, row, "action", decision, detail))
        if index % 2 == 0:
            labels.append(fb.FeedbackReport(rid, row, "label", label))
    for batch in (actions, labels):
        for start in range(0, len(batch), 128):
            fb.send_reports(client, batch[start : start + 128])
    return len(actions), len(labels)


def _wait(query: metrics.Query, labels: int) -> float:
    started = time.monotonic()
    while True:
        rows = query(
            "SELECT count() AS n FROM stagelog.labels_latest WHERE startsWith(request_id, 'demo-')",
            None,
        )
        if int(rows[0]["n"]) >= labels:
            return time.monotonic() - started
        if time.monotonic() - started > LAND_TIMEOUT_S:
            raise StagelogError(f"labels did not reach the store in {LAND_TIMEOUT_S:.0f} s")
        time.sleep(0.25)


def _psi_table(console: Console, calm: list[dict[str, Any]], drift: list[dict[str, Any]]) -> None:
    by_feature = {r["feature"]: r["psi"] for r in calm}
    table = Table(title="PSI per feature, calm vs. drift phase (top 8)", title_justify="left")
    for column in ("feature", "calm", "drift"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in drift[:8]:
        table.add_row(row["feature"], f"{by_feature.get(row['feature'], 0.0):.3f}",
                      f"{row['psi']:.3f}")
    console.print(table)


def _alert_fires_and_resolves(
    console: Console, client: grpcclient.InferenceServerClient, query: metrics.Query,
    start: datetime, seed: int, per_phase: int,
) -> None:
    """The feature_drift alert fires in the drift phase and resolves in calm traffic after it."""
    fired = demo_alerts.wait_state(query, "feature_drift", "firing", start, ALERT_TIMEOUT_S)
    if fired is None:
        console.print("[yellow]the feature_drift alert did not fire (a stack started elsewhere "
                      "evaluates its own rules, every STAGELOG_ALERT_INTERVAL_MS)[/yellow]")
        return
    console.print(f"alert fired at {fired['at']}: {fired['message']}")
    recovery = _phase(client, per_phase * 3 // 2, seed + 300, 0.0, "recovery")
    resolved = demo_alerts.wait_state(query, "feature_drift", "resolved",
                                      metrics.as_datetime(fired["at"]), ALERT_TIMEOUT_S)
    console.print(f"scored {len(recovery)} calm events after the drift phase")
    if resolved is None:
        console.print("[yellow]the feature_drift alert has not resolved yet[/yellow]")
    else:
        console.print(f"alert resolved at {resolved['at']}: {resolved['message']}")
    demo_alerts.print_transitions(console, query, start)


def run(
    console: Console,
    client: grpcclient.InferenceServerClient,
    settings: config.Settings,
    seed: int = 7,
    per_phase: int = 300,
    report_path: Path | None = None,
) -> Path:
    """Run the demo step; returns the path of the written report."""
    query = stack_query.settings_query(settings)
    metrics.ensure_baseline(query)
    start = datetime.now(timezone.utc)
    plan = notes.parse_plan(PLAN.format(start=start.isoformat()), name="demo-plan")
    notes.add(query, plan)
    console.print(f"experiment plan imported as a note: {plan.title!r} ({plan.id[:8]})")

    calm = _phase(client, per_phase, seed + 100, 0.0, "calm")
    drift_start = datetime.now(timezone.utc)
    notes.add(query, notes.make_note(
        "event", "Merchant mix shifted (simulated: generator drift = 1.0)",
        body="Traffic from here on comes from training.generator with drift=1.0.",
        valid_from=drift_start, tags="demo,drift"))
    drifted = _phase(client, per_phase, seed + 200, 1.0, "drift")
    drift_end = datetime.now(timezone.utc)  # every drift request has returned: its rows are older
    console.print(f"scored {len(calm)} calm events, then {len(drifted)} drifted events "
                  "(an event note marks when the drift began)")
    _alert_fires_and_resolves(console, client, query, start, seed, per_phase)

    n_actions, n_labels = _report_feedback(client, calm + drifted)
    console.print(f"reported {n_actions} actions and {n_labels} true labels through the "
                  "`feedback` model over gRPC")
    waited = _wait(query, n_labels)
    console.print(f"all labels are in ClickHouse {waited:.1f} s later\n")

    console.print("[dim]stagelog metrics[/dim]")
    print_metrics(metrics.collect(query, drift_minutes=10.0), console)
    _psi_table(console, metrics.feature_psi(query, start, drift_start),
               metrics.feature_psi(query, drift_start, drift_end))
    path = report_path or settings.home / "report.html"
    data = report.collect(query, since_minutes=15.0, drift_minutes=10.0)
    path.write_text(report.render(data), encoding="utf-8")
    console.print(f"\n[dim]stagelog report --out {path}[/dim]\nwrote the HTML report "
                  f"({path.stat().st_size // 1024} KiB): open {path.as_uri()} in a browser")
    return path


app = typer.Typer(add_completion=False)


@app.command()
def main(
    home: Annotated[Path | None, typer.Option(help="STAGELOG_HOME (default ./.stagelog).")] = None,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    per_phase: Annotated[int, typer.Option(help="Events in each phase.")] = 300,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the stack up at the end.")
    ] = False,
) -> None:
    """Run this demo step on its own."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    settings, started_here = demo_stack.start(console, home)
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
        run(console, client, settings, seed, per_phase)
    except StagelogError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if started_here and not keep_running:
            launcher.down(settings)


if __name__ == "__main__":
    app()
