"""`stagelog note …`, `stagelog metrics`, `stagelog report`, `stagelog baseline load`.

Registered on the main app by ``logging_backend.stack.cli`` (``register(app)``). Every command
reads the store of ``--home`` through ``logging_backend.stack.query.settings_query``: the
collector's query endpoint while the stack runs, the store directly otherwise.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from logging_backend.errors import StagelogError
from logging_backend.stack import query as stack_query

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $STAGELOG_HOME or ./.stagelog)."),
]

note_app = typer.Typer(help="Meta-information: experiments, events, assumptions.",
                       no_args_is_help=True)
baseline_app = typer.Typer(help="The training baseline that drift is measured against.",
                           no_args_is_help=True)


def _die(exc: Exception) -> NoReturn:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _query(home: Path | None) -> Any:
    from logging_backend import config  # noqa: PLC0415

    return stack_query.settings_query(config.load(home=home))


@note_app.command("add")
def note_add(
    kind: Annotated[str, typer.Option(help="experiment, event or assumption.")],
    title: Annotated[str, typer.Option(help="One line.")],
    body: Annotated[str, typer.Option(help="Free text (markdown).")] = "",
    valid_from: Annotated[
        str | None,
        typer.Option("--from", help="Start: ISO 8601, 'now' or -30m/-2h/-1d (default now)."),
    ] = None,
    valid_to: Annotated[
        str | None, typer.Option("--to", help="End (default: open, still in effect).")
    ] = None,
    tags: Annotated[str | None, typer.Option(help="Comma-separated tags.")] = None,
    author: Annotated[str | None, typer.Option(help="Default: the login name.")] = None,
    home: HomeOption = None,
) -> None:
    """Add a note; prints its id."""
    from logging_backend.insights import notes  # noqa: PLC0415

    try:
        note = notes.make_note(kind, title, body, valid_from, valid_to, tags, author)
        typer.echo(notes.add(_query(home), note))
    except StagelogError as exc:
        _die(exc)


@note_app.command("import")
def note_import(
    plan: Annotated[Path, typer.Argument(help="A markdown experiment plan.")],
    home: HomeOption = None,
) -> None:
    """Import a markdown plan as an experiment note (title, From/To/Tags lines, body)."""
    from logging_backend.insights import notes  # noqa: PLC0415

    try:
        note = notes.read_plan(plan)
        typer.echo(notes.add(_query(home), note))
    except StagelogError as exc:
        _die(exc)


@note_app.command("list")
def note_list(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only notes with this tag.")] = None,
    body: Annotated[bool, typer.Option("--body", help="Print each note's body too.")] = False,
    home: HomeOption = None,
) -> None:
    """List notes, oldest first."""
    from logging_backend.insights import notes  # noqa: PLC0415

    try:
        rows = notes.list_notes(_query(home), kind=kind, tag=tag)
    except StagelogError as exc:
        _die(exc)
    for row, line in zip(rows, notes.format_lines(rows), strict=True):
        typer.echo(f"{row['id'][:8]}  {line}")
        if body and row["body"]:
            typer.echo("    " + row["body"].rstrip().replace("\n", "\n    "))
    if not rows:
        typer.echo("no notes")


@baseline_app.command("load")
def baseline_load(
    model_repository: Annotated[
        Path | None, typer.Option(help="Model repository (default: the repo's).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Load features/<v>/baseline.json of the model repository (again) into the store."""
    from logging_backend.insights import metrics  # noqa: PLC0415

    try:
        count = metrics.ensure_baseline(_query(home), model_repository, force=True)
    except StagelogError as exc:
        _die(exc)
    typer.echo(f"loaded the baseline of {count} features")


def _table(console: Any, title: str, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left")
    if not rows:
        console.print(f"{title}: no data yet", style="dim")
        return
    for name in rows[0]:
        table.add_column(name, justify="left" if isinstance(rows[0][name], str) else "right")
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    console.print(table)


def print_alerts(firing: list[Any], history: list[Any], console: Any) -> None:
    """Print the alerts firing now and the latest transitions (``stagelog.alerts``)."""
    if firing:
        _table(console, "alerts firing now", firing)
    else:
        console.print("alerts: none firing", style="green")
    if history:
        _table(console, f"latest alert transitions ({len(history)})", history)


def print_metrics(result: Any, console: Any, top_features: int = 10) -> None:
    """Print a ``metrics.Metrics`` as tables, then the notes that overlap its window."""
    from logging_backend.insights import notes  # noqa: PLC0415

    if result.window is None:
        console.print("no predictions logged yet", style="yellow")
        return
    lo, hi = (t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in result.window)
    console.print(f"predictions from {lo} to {hi} UTC", style="bold")
    _table(console, "online accuracy and log-loss (labelled rows)", result.accuracy)
    _table(console, "member agreement", result.agreement)
    _table(console, "decision mix", result.decisions)
    _table(console, "decisions vs. reported actions", result.outcomes)
    _table(console, "latency per stage (ms)", result.latency)
    drift = result.drift[:top_features]
    _table(console, f"feature drift: PSI, last {result.drift_minutes:g} min (top {len(drift)})",
           drift)
    if result.unmatched:
        _table(console, "feedback for unknown (request_id, row)", result.unmatched)
    print_alerts(result.alerts, result.alert_history, console)
    if result.notes:
        console.print("notes overlapping this window:", style="bold")
        for line in notes.format_lines(result.notes):
            console.print("  " + line, markup=False, highlight=False)


def metrics_command(
    drift_minutes: Annotated[
        float, typer.Option(help="PSI over the last this many minutes of traffic.")
    ] = 5.0,
    home: HomeOption = None,
) -> None:
    """Print online accuracy, agreement, decision mix, latency quantiles, drift and notes."""
    from rich.console import Console  # noqa: PLC0415

    from logging_backend.insights import metrics  # noqa: PLC0415

    try:
        query = _query(home)
        metrics.ensure_baseline(query)
        result = metrics.collect(query, drift_minutes=drift_minutes)
    except StagelogError as exc:
        _die(exc)
    print_metrics(result, Console())


def report_command(
    out: Annotated[Path, typer.Option(help="Where to write the HTML page.")] = Path("report.html"),
    request_id: Annotated[
        str | None, typer.Option(help="Request of the waterfall (default: the latest).")
    ] = None,
    since_minutes: Annotated[float, typer.Option(help="Window of the time plots.")] = 60.0,
    drift_minutes: Annotated[float, typer.Option(help="Window of the PSI bars.")] = 5.0,
    home: HomeOption = None,
) -> None:
    """Write a self-contained HTML report with plots (latency, waterfall, mix, drift)."""
    from logging_backend.insights import report  # noqa: PLC0415

    try:
        data = report.collect(_query(home), request_id, since_minutes, drift_minutes)
    except StagelogError as exc:
        _die(exc)
    out.write_text(report.render(data), encoding="utf-8")
    typer.echo(f"wrote {out} ({out.stat().st_size} bytes)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `stagelog` app."""
    app.add_typer(note_app, name="note")
    app.add_typer(baseline_app, name="baseline")
    app.command("metrics")(metrics_command)
    app.command("report")(report_command)
