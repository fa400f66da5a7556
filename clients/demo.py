"""The README demo: start the stack, send real gRPC traffic, show decisions and what was logged.

``make demo`` runs ``python -m clients.demo``. Steps:

1. start Triton + the collector in ``.stagelog`` (or ``--home``); a stack already running there
   is used as it is and left running;
2. score a few hundred generated card-payment events (some with dirty data: missing fields,
   unknown categories, outliers, duplicates) in batches over gRPC;
3. send rows that cannot be scored and show the INVALID_ARG errors (row and field named),
   then show that the server still serves;
4. query what was logged: rows per table, latency per stage, the decision mix, the refused
   requests, and the lineage of one request across every stage;
5. actions, labels and notes: a calm and a drifting phase of traffic, the `feature_drift` alert
   firing in the drift phase and resolving in calm traffic after it, the action taken and the
   true label reported for part of it, `stagelog metrics` and `stagelog report`
   (``clients/demo_feedback.py``, ``clients/demo_alerts.py``);
6. replay the first scored request from the log: on the served versions every stage matches bit
   for bit; with mlp v1 its differences (``clients/demo_replay.py``);
7. stop the stack (``--keep-running`` leaves it up for ``stagelog sql`` and friends).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import tritonclient.grpc as grpcclient
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from tritonclient.utils import InferenceServerException

from clients import demo_feedback, demo_replay
from clients.demo_stack import start
from clients.score import (
    CLASSES,
    ScoreResult,
    generated_events,
    print_summary,
    request_ids,
    score_batch,
    score_events,
)
from logging_backend import config
from logging_backend.errors import StagelogError
from logging_backend.spool import layout
from logging_backend.stack import launcher, query

# Rows a client might send by mistake, each with the field the error must name.
BAD_ROWS: list[tuple[str, Any]] = [
    ("not JSON", "{event_id: e-1, amount: 12"),
    ("no event_id", {"card_id": "c-9", "amount": 12.5, "currency": "EUR"}),
    ("amount negative", {"event_id": "bad-neg", "amount": -40.0}),
    ("amount NaN", '{"event_id": "bad-nan", "amount": NaN}'),
    ("amount not a number", {"event_id": "bad-str", "amount": "twelve"}),
]


def _rule(console: Console, step: int, title: str) -> None:
    console.rule(f"[bold]{step}. {title}")


def score(
    console: Console, client: grpcclient.InferenceServerClient, n: int, seed: int, run: str
) -> tuple[list[str], str]:
    """Score ``n`` generated events in batches and print the summary.

    Returns:
        The ids of the served requests, and the id of a one-event request whose lineage the
        demo shows (the first event not approved, sent again alone).
    """
    events = generated_events(n, seed, dirty=0.05)
    flagged: list[tuple[dict, ScoreResult, int]] = []
    served: list[str] = []

    def keep(batch: list, result: ScoreResult | InferenceServerException) -> None:
        if isinstance(result, InferenceServerException):
            return
        served.append(result.request_id)
        for row, decision in enumerate(result.decisions):
            if decision != "approve":
                flagged.append((batch[row], result, row))

    summary = score_events(client, events, 25, request_ids(run), on_result=keep)
    console.print(f"sent {n} events (seed {seed}, 5 % dirty) in batches of 25 over gRPC")
    print_summary(summary, console)
    table = Table(title=f"events not approved (first 10 of {len(flagged)})")
    for column in ("request_id", "row", "event_id", "amount", "category", "country", "channel"):
        table.add_column(column)
    for name in CLASSES:
        table.add_column(f"p({name})", justify="right")
    table.add_column("decision")
    for event, result, row in flagged[:10]:
        table.add_row(
            result.request_id,
            str(row),
            str(event.get("event_id")),
            f"{event.get('amount')} {event.get('currency', '')}",
            str(event.get("merchant_category", "-")),
            str(event.get("country", "-")),
            str(event.get("channel", "-")),
            *(f"{p:.3f}" for p in result.probabilities[row]),
            result.decisions[row],
        )
    console.print(table)
    chosen = flagged[0][0] if flagged else events[0]
    again = dict(chosen, event_id=f"{chosen['event_id']}-again")
    single = score_batch(client, [again], f"{run}-lineage")
    served.append(single.request_id)
    console.print(
        f"event {chosen['event_id']} sent again alone as request {single.request_id}: "
        f"{single.decisions[0]} (probabilities "
        + ", ".join(f"{c} {p:.3f}" for c, p in zip(CLASSES, single.probabilities[0], strict=True))
        + ")"
    )
    return served, single.request_id


def refuse(
    console: Console, client: grpcclient.InferenceServerClient, seed: int, run: str
) -> str:
    """Send batches with one bad row each; show the errors; show that serving goes on.

    Returns:
        The id of the request served right after the refused ones.
    """
    good = generated_events(3, seed + 1000)
    table = Table(title="bad input: the whole request is refused, the row and field are named")
    table.add_column("case")
    table.add_column("request_id")
    table.add_column("gRPC status")
    table.add_column("message")
    for index, (case, row) in enumerate(BAD_ROWS):
        batch = [good[0], json.dumps(row) if isinstance(row, dict) else row, good[1]]
        request_id = f"{run}-bad-{index}"
        try:
            score_batch(client, batch, request_id)
            table.add_row(case, request_id, "[red]accepted?![/red]", "")
        except InferenceServerException as exc:
            table.add_row(case, request_id, str(exc.status()).split(".")[-1], exc.message())
    console.print(table)
    result = score_batch(client, good, f"{run}-after-bad")
    console.print(
        f"the next request is served as usual: {result.request_id} -> {', '.join(result.decisions)}"
    )
    return result.request_id


# What the demo asks the store, in order: (title, SQL). Column names: logging_backend/migrations.
# {run:String} is this run's request-id prefix: a home keeps the rows of earlier runs too.
THIS_RUN = "startsWith(request_id, {run:String})"
QUERIES: list[tuple[str, str]] = [
    (
        "rows logged for this run's requests",
        "SELECT * FROM (SELECT 'stage_events' AS table, count() AS rows FROM stagelog.stage_events "
        f"WHERE {THIS_RUN} UNION ALL SELECT 'stage_tensors', count() FROM stagelog.stage_tensors "
        f"WHERE {THIS_RUN} UNION ALL SELECT 'predictions', count() FROM stagelog.predictions "
        f"WHERE {THIS_RUN}) ORDER BY table",
    ),
    (
        "model versions loaded (one row per model instance and start)",
        "SELECT model_name, model_version, left(artifact_sha256, 12) AS sha256, triton_version, "
        "count() AS loads FROM stagelog.model_versions "
        "GROUP BY model_name, model_version, sha256, triton_version ORDER BY model_name",
    ),
    (
        "latency per stage (wall and CPU time inside each stage, per request)",
        "SELECT stage, model_version AS version, count() AS requests, sum(rows) AS events, "
        "round(quantile(0.5)(wall_ms), 3) AS p50_wall_ms, "
        "round(quantile(0.95)(wall_ms), 3) AS p95_wall_ms, round(avg(cpu_ms), 3) AS avg_cpu_ms "
        f"FROM stagelog.stage_events WHERE status = 'ok' AND {THIS_RUN} "
        "GROUP BY stage, model_version "
        "ORDER BY indexOf(['preprocess', 'features', 'mlp', 'forest', 'logreg', 'aggregate'], "
        "toString(stage))",
    ),
    (
        "decisions of the ensemble, with the mean probability of each class",
        "SELECT decision, count() AS events, "
        "round(avg(class_probs['legit']), 3) AS avg_p_legit, "
        "round(avg(class_probs['card_fraud']), 3) AS avg_p_card_fraud, "
        "round(avg(class_probs['account_takeover']), 3) AS avg_p_account_takeover "
        f"FROM stagelog.predictions WHERE model = 'aggregate' AND {THIS_RUN} GROUP BY decision "
        "ORDER BY events DESC",
    ),
    (
        "how often the members disagree with the ensemble's class",
        "SELECT p.model AS member, p.model_version AS version, count() AS events, "
        "countIf(p.predicted_class != a.predicted_class) AS disagreements "
        "FROM stagelog.predictions AS p INNER JOIN "
        "(SELECT request_id, row, predicted_class FROM stagelog.predictions "
        f"WHERE model = 'aggregate' AND {THIS_RUN}) AS a "
        "ON p.request_id = a.request_id AND p.row = a.row "
        "WHERE p.model != 'aggregate' GROUP BY member, version ORDER BY member",
    ),
    (
        "refused requests, as the stage that refused them logged them",
        "SELECT request_id, stage, error FROM stagelog.stage_events "
        f"WHERE status = 'error' AND {THIS_RUN} ORDER BY ts",
    ),
]
INGEST_TIMEOUT_S = 60.0


def wait_until_logged(settings: config.Settings, request_ids: list[str]) -> float:
    """Wait until what the stages logged for ``request_ids`` is in the store; return seconds.

    Stages flush their buffers to the spool every ``STAGELOG_FLUSH_MS``; the collector ships each
    table's segments on its own. So: let the last flush happen, then wait until every segment
    spooled so far is shipped and the `aggregate` rows of all requests are queryable.
    """
    started = time.monotonic()
    time.sleep(3 * settings.flush_ms / 1000.0)
    # v1 table files and the stages' v2 files (one per flush, every table) alike
    pending = [ref.path for ref in layout.list_segments(settings.spool_dir)]
    sql = (
        "SELECT uniqExact(request_id) FROM stagelog.stage_events "
        "WHERE stage = 'aggregate' AND request_id IN {ids:Array(String)}"
    )
    while True:
        left = [segment for segment in pending if segment.exists()]
        count = 0
        if not left:
            result = query.execute(settings, sql, {"ids": request_ids}, "JSONCompact")
            count = int(json.loads(result)["data"][0][0])
            if count >= len(request_ids):
                return time.monotonic() - started
        if time.monotonic() - started > INGEST_TIMEOUT_S:
            raise StagelogError(
                f"{len(left)} spool segments not shipped, {count} of {len(request_ids)} requests "
                f"in the store after {INGEST_TIMEOUT_S:.0f} s; see "
                f"{settings.logs_dir / 'collector.log'}"
            )
        time.sleep(0.2)


def show_logged(
    console: Console, settings: config.Settings, served: list[str], lineage_id: str, run: str
) -> None:
    """Query what the stages logged: tables, latency, decisions, errors, one lineage."""
    if not settings.logging:
        console.print("logging is off in this stack: nothing was recorded")
        return
    waited = wait_until_logged(settings, served)
    console.print(
        f"all {len(served)} served requests are in ClickHouse ({settings.dsn}) "
        f"{waited:.1f} s after the last answer"
    )
    params = {"run": f"{run}-"}
    for title, sql in QUERIES:
        shown = f"stagelog sql \"{sql}\"" + (f" --param run={run}-" if "{run:" in sql else "")
        console.print(Text("\n" + shown, style="dim"))
        query.render_table(query.execute(settings, sql, params, "table"), console, title)
    console.print(Text(f"\nstagelog lineage {lineage_id}", style="dim"))
    query.lineage(settings, lineage_id, console)


app = typer.Typer(add_completion=False)


@app.command()
def main(
    home: Annotated[Path | None, typer.Option(help="STAGELOG_HOME (default ./.stagelog).")] = None,
    events: Annotated[int, typer.Option(help="Events to score.")] = 300,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the stack up at the end.")
    ] = False,
) -> None:
    """Run the stagelog demo end to end."""
    # Piped output (CI logs) gets a wide console so that the lineage table stays readable.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.rule("[bold]stagelog demo")
    _rule(console, 1, "start Triton and the collector")
    try:
        settings, started_here = start(console, home)
    except StagelogError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
        _rule(console, 2, "score card payments over gRPC")
        run = f"demo-{uuid.uuid4().hex[:6]}"
        console.print(f"request ids of this run start with {run}-")
        served, lineage_id = score(console, client, events, seed, run)
        _rule(console, 3, "bad input gets INVALID_ARG, naming the row and the field")
        served.append(refuse(console, client, seed, run))
        _rule(console, 4, "what was logged")
        show_logged(console, settings, served, lineage_id, run)
        if settings.logging:
            _rule(console, 5, "actions, labels, a note, drift: online metrics and the report")
            demo_feedback.run(console, client, settings, seed)
            _rule(console, 6, "replay a logged request: the served version, then mlp v1")
            demo_replay.run(console, client, settings, served[0])
    except (StagelogError, InferenceServerException) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if started_here and not keep_running:
            _rule(console, 7, "stop the stack")
            stopped = launcher.down(settings)
            console.print(", ".join(f"stopped {name} (pid {pid})" for name, pid in stopped.items()))
        else:
            console.print(
                f"\nthe stack keeps running in {settings.home}: try "
                f"`stagelog status --home {settings.home}`, then `stagelog down --home "
                f"{settings.home}`"
            )


if __name__ == "__main__":
    sys.exit(app())
