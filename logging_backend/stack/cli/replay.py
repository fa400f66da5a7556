"""`stagelog replay` and `stagelog alerts`: registered on the main app by ``register(app)``."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from logging_backend.errors import StagelogError

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default: $STAGELOG_HOME or ./.stagelog)."),
]


def _die(exc: Exception) -> NoReturn:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def print_outcomes(outcomes: list[Any], console: Any, rows_shown: int = 5) -> None:
    """Print replays as tables: one line per stage, then probabilities where they differ."""
    from rich.table import Table  # noqa: PLC0415

    for outcome in outcomes:
        if outcome.error:
            console.print(f"[red]request {outcome.request_id}: {outcome.error}[/red]")
            continue
        first = outcome.results[0] if outcome.results else None
        title = f"replay of {outcome.request_id}" + (f" ({first.source})" if first else "")
        table = Table(title=title, title_justify="left")
        for column in ("stage", "served", "replayed", "match", "max_abs_diff", "class flips",
                       "decision flips", "replay id"):
            table.add_column(column, justify="left" if column in ("stage", "replay id")
                             else "right")
        for r in outcome.results:
            table.add_row(r.stage, f"v{r.logged_version}", f"v{r.model_version}",
                          "[green]yes[/green]" if r.match else "[red]no[/red]",
                          f"{r.max_abs_diff:.3g}", str(r.class_flips), str(r.decision_flips),
                          r.replay_id)
        console.print(table)
        for r in outcome.results:
            if r.match or not r.probabilities:
                continue
            side = Table(title=f"{r.stage}: v{r.logged_version} (served) vs v{r.model_version}"
                         f" (replayed), first {rows_shown} rows", title_justify="left")
            for column in ("row", "served probabilities", "replayed probabilities", "decision"):
                side.add_column(column)
            for entry in r.probabilities[:rows_shown]:
                decision = ""
                if "logged_decision" in entry:
                    decision = entry["logged_decision"]
                    if entry["replayed_decision"] != decision:
                        decision += f" -> [bold red]{entry['replayed_decision']}[/bold red]"
                side.add_row(str(entry["row"]), " ".join(f"{p:.4f}" for p in entry["logged"]),
                             " ".join(f"{p:.4f}" for p in entry["replayed"]), decision)
            console.print(side)


def register(app: typer.Typer) -> None:
    """Add `replay` and `alerts` to the `stagelog` app."""

    @app.command()
    def replay(
        request_id: Annotated[
            str | None, typer.Argument(help="The request to replay (or use --since/--where).")
        ] = None,
        source: Annotated[
            str, typer.Option("--from", help="raw (through pipeline) or features (one member).")
        ] = "raw",
        model: Annotated[
            str | None, typer.Option(help="Member to run: mlp, forest, logreg.")
        ] = None,
        version: Annotated[str | None, typer.Option(help="Its version (default: served).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per stage.")] = False,
        since: Annotated[
            str | None, typer.Option(help="Replay every request since: ISO 8601 or -30m/-2h.")
        ] = None,
        until: Annotated[str | None, typer.Option(help="End of the window (default now).")] = None,
        where: Annotated[
            str | None,
            typer.Option(help="SQL condition on the aggregate's predictions rows, e.g. "
                              "\"decision = 'decline'\"."),
        ] = None,
        limit: Annotated[int, typer.Option(help="At most this many requests.")] = 100,
        home: HomeOption = None,
    ) -> None:
        """Re-run logged requests on any loaded version and compare with the log, per stage."""
        import tritonclient.grpc as grpcclient  # noqa: PLC0415
        from rich.console import Console  # noqa: PLC0415

        from logging_backend.insights import notes  # noqa: PLC0415
        from logging_backend.insights import replay as log_replay  # noqa: PLC0415
        from logging_backend.stack import launcher  # noqa: PLC0415
        from logging_backend.stack import query as store_query
        from logging_backend.stack import replay as runner  # noqa: PLC0415

        try:
            settings = launcher.settings_from_stack(home)  # its ports
            query = store_query.settings_query(settings)
            if request_id is not None:
                ids = [request_id]
            elif since is not None or where is not None:
                t_from = notes.parse_when(since or "-1h")
                t_to = notes.parse_when(until) if until else datetime.now(timezone.utc)
                ids = log_replay.select_requests(query, t_from, t_to, where, limit)
            else:
                raise StagelogError("give a REQUEST_ID, or --since/--where for several")
            if not ids:
                raise StagelogError("no served request matches")
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
            outcomes = runner.replay(client, query, ids, source, model, version)
        except StagelogError as exc:
            _die(exc)
        results = [r for o in outcomes for r in o.results]
        if as_json:
            for outcome in outcomes:
                if outcome.error:
                    print(json.dumps({"request_id": outcome.request_id, "error": outcome.error}))
                for r in outcome.results:
                    print(json.dumps(r.as_json()))
        else:
            console = Console()
            print_outcomes(outcomes, console)
            if len(ids) > 1 or where or since:
                truth = log_replay.labels(query, ids)
                shadow = log_replay.shadow_metrics(results, truth)
                if shadow:
                    from rich.table import Table  # noqa: PLC0415

                    table = Table(title="shadow evaluation on the labelled rows",
                                  title_justify="left")
                    for column in shadow[0]:
                        table.add_column(column)
                    for row in shadow:
                        table.add_row(*(str(v) for v in row.values()))
                    console.print(table)
        if any(o.error for o in outcomes):
            raise typer.Exit(1)
        sys.stdout.flush()

    @app.command()
    def alerts(
        rules: Annotated[
            Path | None, typer.Option(help="Rules file (default: $STAGELOG_ALERT_RULES or the "
                                           "shipped logging_backend/insights/alert_rules.toml).")
        ] = None,
        check: Annotated[
            bool, typer.Option("--check", help="Evaluate every rule now (nothing is recorded).")
        ] = False,
        home: HomeOption = None,
    ) -> None:
        """List the alert rules with their state; --check evaluates them once, as a dry run."""
        from datetime import datetime, timezone  # noqa: PLC0415

        from rich.console import Console  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        from logging_backend import config  # noqa: PLC0415
        from logging_backend.insights import alerts as alert_rules  # noqa: PLC0415
        from logging_backend.stack import query as store_query  # noqa: PLC0415

        try:
            settings = config.load(home=home)
            loaded = alert_rules.load_rules(rules or settings.alert_rules or None)
            query = store_query.settings_query(settings)
            states = alert_rules.current_states(query)
            now = datetime.now(timezone.utc)
            table = Table(title=f"{len(loaded)} alert rules", title_justify="left")
            columns = ["rule", "severity", "window", "condition", "state"]
            if check:
                columns += ["value now", "would fire"]
            for column in columns:
                table.add_column(column)
            for rule in loaded:
                condition = (f"> {rule.above:g}" if rule.above is not None
                             else f"< {rule.below:g}" if rule.below is not None
                             else f"{rule.direction} mean ± {rule.k:g}σ of {rule.baseline}")
                row = [rule.name, rule.severity, f"{rule.window_s}s", condition,
                       states.get(rule.name, "never fired")]
                if check:
                    found = alert_rules.evaluate(query, rule, now)
                    row += ["no data" if found.value is None else f"{found.value:.4g}",
                            "yes" if found.firing else "no"]
                table.add_row(*row)
        except StagelogError as exc:
            _die(exc)
        Console().print(table)
