"""The `stagelog` command line: each command is a thin wrapper over a module function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from logging_backend.errors import StagelogError

app = typer.Typer(
    help="Log every arrow of a Triton pipeline into ClickHouse.", no_args_is_help=True
)

# Commands are added below, one section per owning module (see docs/architecture.md).


# --------------------------------------------------------------------------- up / down / status
# Owner: the launcher (logging_backend/launcher.py).

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $STAGELOG_HOME or ./.stagelog)."),
]


def _die(exc: Exception) -> NoReturn:
    """Print a stagelog error as one plain message and exit 1 (no traceback)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def up(
    home: HomeOption = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (default 8001).")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port (default 8000).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port (default 8002).")] = None,
    no_logging: Annotated[
        bool, typer.Option("--no-logging", help="Serve the same models, instrumentation off.")
    ] = False,
    model_repository: Annotated[
        Path | None, typer.Option(help="Model repository (default: the repo's model_repository).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 120.0,
    extra_triton_arg: Annotated[
        list[str] | None,
        typer.Option(help="Extra tritonserver argument, repeatable (e.g. --trace-config=...)."),
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Run the stages on the GPU (STAGELOG_DEVICE=gpu).")
    ] = False,
) -> None:
    """Start the collector and Triton in the background; return once `pipeline` is ready."""
    from logging_backend import config
    from logging_backend.stack import launcher

    try:
        settings = config.load(
            home=home,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            logging=False if no_logging else None,
            device="gpu" if gpu else None,
        )
        stack = launcher.up(
            settings,
            model_repository=model_repository,
            timeout=timeout,
            extra_triton_args=extra_triton_arg or (),
        )
    except StagelogError as exc:
        _die(exc)
    logging_state = "on" if stack.logging else "off"
    typer.echo(
        f"ready: tritonserver {stack.triton_version} (pid {stack.triton_pid}) "
        f"gRPC {stack.grpc_url}, HTTP {stack.http_url if stack.http else 'off'}, "
        f"metrics 127.0.0.1:{stack.metrics_port}; "
        f"logging {logging_state}"
    )
    if stack.collector_pid:
        typer.echo(f"collector pid {stack.collector_pid}, ClickHouse HTTP interface at "
                   f"{stack.query_url} (`stagelog status` names the user)")
    typer.echo(f"home {stack.home}; stop with: stagelog down --home {stack.home}")


@app.command()
def down(home: HomeOption = None) -> None:
    """Stop what `up` started in this home: Triton first, then the collector (it drains)."""
    from logging_backend import config
    from logging_backend.stack import launcher

    try:
        stopped = launcher.down(config.load(home=home))
    except StagelogError as exc:
        _die(exc)
    if not stopped:
        typer.echo("nothing was running")
    for name, pid in stopped.items():
        typer.echo(f"stopped {name} (pid {pid})")


def _print_collector(home: str) -> None:
    """The query door (URL and user, never the password) and the collector's figures."""
    import json
    import time
    import urllib.request

    from logging_backend.collector import service as collector

    info = collector.read_info(Path(home))
    if not info:
        return
    if info.get("http_url"):
        typer.echo(
            f"store: ClickHouse HTTP interface at {info['http_url']} (read-only), user "
            f"{info['user']}, password "
            + (f"in {info['password_file']}" if info.get("password_file")
               else "from STAGELOG_QUERY_PASSWORD")
        )
    if not info.get("metrics_url"):
        return
    typer.echo(f"collector metrics at {info['metrics_url']}")
    try:
        with urllib.request.urlopen(info["metrics_url"] + "?format=json", timeout=5) as r:
            figures = json.loads(r.read())
    except (OSError, ValueError):
        return
    last = figures.get("last_successful_insert")
    ago = f"{time.time() - last:.1f}s ago" if last else "none yet"
    oldest = figures["oldest_segment_age_s"]
    typer.echo(
        f"spool: {figures['pending_segments']} segments pending "
        f"({figures['pending_bytes'] / 1e6:.1f} MB, oldest {oldest:.1f}s); "
        f"last insert {ago}; transient failures {figures['transient_failures']}"
    )
    rows = figures.get("rows_by_table") or {}
    if rows:
        inserts = figures.get("inserts_by_table") or {}
        typer.echo("shipped: " + ", ".join(
            f"{t} {n} rows/{inserts.get(t, 0)} inserts" for t, n in sorted(rows.items())))
    failures = figures.get("failures_by_table") or {}
    if failures:
        typer.echo("failed inserts: " + ", ".join(f"{t} {n}" for t, n in sorted(failures.items())))
    drops = figures.get("dropped_segments") or {}
    if drops:
        typer.echo("dropped segments: " + ", ".join(f"{r} {n}" for r, n in sorted(drops.items())))


@app.command()
def status(home: HomeOption = None) -> None:
    """Say what runs in this home: pids, ports, and whether `pipeline` is ready."""
    from logging_backend import config
    from logging_backend.stack import launcher

    try:
        report = launcher.status(config.load(home=home))
    except StagelogError as exc:
        _die(exc)
    typer.echo(f"home {report.home}")
    for name, pid in report.pids.items():
        typer.echo(f"{name}: " + (f"running (pid {pid})" if pid else "not running"))
    if report.stack:
        stack = report.stack
        typer.echo(
            f"ports: gRPC 127.0.0.1:{stack['grpc_port']}, "
            f"HTTP {stack['http_port'] if stack.get('http') else 'off'}, "
            f"metrics {stack['metrics_port']}; logging {'on' if stack['logging'] else 'off'}; "
            f"tritonserver {stack['triton_version']}"
        )
    _print_collector(report.home)
    if report.stray_collector:
        typer.echo(
            f"collector pid {report.stray_collector} was not started by `stagelog up`: "
            "stop it, or use `stagelog restart collector`"
        )
    for part, why in report.down.items():
        typer.echo(f"down: {part}: {why[:200]}")
    if report.events:
        typer.echo("recent service events:")
        for event in report.events:
            what = event["component"] + (f" {event['model']}" if event.get("model") else "")
            how = ", ".join(
                x for x in (
                    f"pid {event['pid']}" if event.get("pid") else "",
                    f"exit {event['exit_code']}" if event.get("exit_code") is not None else "",
                    event.get("signal") or "",
                ) if x
            )
            typer.echo(
                f"  {event['ts'][:19]} {what} {event['event']}"
                + (f" ({how})" if how else "") + f": {event.get('detail', '')[:160]}"
            )
    typer.echo("ready: " + ("yes" if report.ready else "no"))
    if report.stack and report.stack.get("query_url"):
        _print_alerts(report.home)
    if not report.running:
        raise typer.Exit(3)


@app.command()
def restart(
    part: Annotated[
        str, typer.Argument(help="collector, tritonserver (or triton), or a model name.")
    ],
    home: HomeOption = None,
) -> None:
    """Restart one part of the running stack (through its supervisor) and wait until it is back."""
    from logging_backend.stack import launcher, supervisor

    try:
        message = supervisor.request_restart(launcher.settings_from_stack(home), part)
    except StagelogError as exc:
        _die(exc)
    typer.echo(message)


def _print_alerts(home: Path) -> None:
    """One line per alert rule firing now (stagelog.alerts), or that none is."""
    from logging_backend import config
    from logging_backend.insights import metrics
    from logging_backend.stack import query

    try:
        firing = metrics.alerts_firing(query.settings_query(config.load(home=home)))
    except StagelogError as exc:
        typer.echo(f"alerts: unknown ({exc})")
        return
    if not firing:
        typer.echo("alerts: none firing")
    for alert in firing:
        typer.echo(f"alert firing: {alert['rule']} ({alert['severity']}) since {alert['since']}: "
                   f"{alert['message']}")


# ------------------------------------------------------------ migrate / sql / lineage / ingest
# Owner: the store (logging_backend/store.py, query.py, collector.py).

ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Bound parameter KEY=VALUE for {KEY:Type} in the query."),
]


@app.command()
def migrate(home: HomeOption = None) -> None:
    """Apply pending schema migrations and recreate missing objects (STAGELOG_DSN)."""
    from logging_backend import config
    from logging_backend.stack import query

    try:
        result = query.migrate(config.load(home=home))
    except StagelogError as exc:
        _die(exc)
    by = " (by the running collector)" if result["by"] == "collector" else ""
    if result["applied"]:
        typer.echo("applied: " + ", ".join(result["applied"]) + by)
    if result["recreated"]:
        typer.echo("recreated missing objects: " + ", ".join(result["recreated"]) + by)
    if not result["applied"] and not result["recreated"]:
        typer.echo("schema is up to date: every object exists" + by)


@app.command()
def sql(
    query_text: Annotated[str, typer.Argument(metavar="QUERY", help="One SQL statement.")],
    param: ParamOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f",
            help="table, csv, tsv, json, jsonl, or a ClickHouse output format (TSV, Pretty...).",
        ),
    ] = "table",
    home: HomeOption = None,
) -> None:
    """Run SQL against the store (through the collector while it runs, else directly)."""
    import sys

    from rich.console import Console

    from logging_backend import config
    from logging_backend.stack import query

    try:
        settings = config.load(home=home)
        result = query.execute(
            settings, query_text, query.parse_params(param), fmt, read_only=True
        )
    except StagelogError as exc:
        _die(exc)
    if fmt == "table":
        query.render_table(result, Console())
    else:
        sys.stdout.buffer.write(result)
        sys.stdout.buffer.flush()


@app.command()
def lineage(
    request_id: Annotated[str, typer.Argument(help="The request id (REQUEST_ID of the reply).")],
    full: Annotated[bool, typer.Option("--full", help="Print long values whole.")] = False,
    home: HomeOption = None,
) -> None:
    """Show every arrow of one request in pipeline order."""
    from rich.console import Console

    from logging_backend import config
    from logging_backend.stack import query

    try:
        settings = config.load(home=home)
        found = query.lineage(settings, request_id, Console(), None if full else 600)
    except StagelogError as exc:
        _die(exc)
    if not found:
        raise typer.Exit(1)


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="A spool directory or a home with spool/.")],
    home: HomeOption = None,
) -> None:
    """Load spool segments brought from another machine into this home's store."""
    from logging_backend import config
    from logging_backend.stack.ingest import ingest as ingest_segments

    try:
        result = ingest_segments(config.load(home=home), directory)
    except StagelogError as exc:
        _die(exc)
    typer.echo(f"ingested {result['segments']} segments")


# ------------------------------------------------------ note / baseline / metrics / report
# Owner: feedback, notes and metrics (logging_backend/cli_insights.py).
from logging_backend.stack.cli.insights import register as _register_insights  # noqa: E402

_register_insights(app)

# ------------------------------------------------------------------------- replay / alerts
# Owner: replay and alerts (logging_backend/stack/cli/replay.py).
from logging_backend.stack.cli.replay import register as _register_replay  # noqa: E402

_register_replay(app)


def main() -> None:
    """Entry point of the `stagelog` script."""
    app()


if __name__ == "__main__":
    main()
