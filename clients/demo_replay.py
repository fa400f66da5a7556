"""Demo step: replay a logged request on the served version and on mlp v1, from the log."""

from __future__ import annotations

import tritonclient.grpc as grpcclient
from rich.console import Console
from rich.table import Table

from logging_backend import config
from logging_backend.stack import query as stack_query
from logging_backend.stack import replay as runner
from logging_backend.stack.cli.replay import print_outcomes


def run(console: Console, client: grpcclient.InferenceServerClient, settings: config.Settings,
        request_id: str) -> None:
    """Replay ``request_id`` from RAW twice: as served, then with mlp version 1."""
    query = stack_query.settings_query(settings)
    console.print(f"[dim]stagelog replay {request_id}[/dim]")
    served = runner.replay(client, query, [request_id])
    print_outcomes(served, console, rows_shown=3)
    results = served[0].results
    if results and all(r.match for r in results):
        console.print(f"every stage of the replay matches the log bit for bit "
                      f"({len(results)} stages, served versions)")
    console.print(f"\n[dim]stagelog replay {request_id} --model mlp --version 1[/dim]")
    other = runner.replay(client, query, [request_id], model="mlp", version="1")
    print_outcomes(other, console, rows_shown=5)
    rows = query(
        "SELECT replay_id, stage, logged_version, model_version, match, "
        "round(max_abs_diff, 6) AS max_abs_diff, decision_flips FROM stagelog.replays "
        "WHERE request_id = {r:String} ORDER BY ts, replay_id, stage",
        {"r": request_id},
    )
    table = Table(title=f"stagelog.replays: the replays of {request_id}", title_justify="left")
    for column in ("replay_id", "stage", "logged_version", "model_version", "match",
                   "max_abs_diff", "decision_flips"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
