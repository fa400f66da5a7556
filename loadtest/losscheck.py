"""After a load test: did every request sent leave all its rows in the store?

Reads the ledger(s) the load test wrote (``loadtest/reports/requests.jsonl`` by default) and
queries the home's store the way ``stagelog sql`` does (the collector's endpoint while the
stack runs, the store itself otherwise). Expected, per request:

- answered: exactly one ``status = 'ok'`` row in ``stage_events`` for each stage of the
  pipeline and no error row; ``rows`` rows in ``predictions`` for each member and the aggregate.
- refused by the server (INVALID_ARG, or any status the server itself sent): at least one
  ``status = 'error'`` row in ``stage_events``.
- lost on the way (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED): the server may or may not have
  seen it, so it is counted but not checked.

Rows arrive after the stages flush and the collector ships (a second or so), so the check
re-queries what is still incomplete until ``--wait`` seconds have passed. It prints a table and
exits 0 when nothing is missing or duplicated, 1 when something is, 2 on bad input.

Usage::

    python -m loadtest.losscheck                       # loadtest/reports/requests.jsonl
    python -m loadtest.losscheck run1.jsonl --home /tmp/stagelog --wait 120
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadtest.ledger import DEFAULT_REQUEST_LOG, LedgerError, Sent, read_ledger
from logging_backend.errors import StagelogError
from logging_backend.stack import launcher, query

# The stages of `pipeline` (model_repository/pipeline/config.pbtxt) and the models that write
# `predictions` rows (one per batch row each).
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
PREDICTION_MODELS = ("mlp", "forest", "logreg", "aggregate")
# A client-side or transport failure: the server may never have seen the request.
UNSEEN_STATUSES = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}
)
CHUNK = 5000
DEFAULT_WAIT_S = 60.0
POLL_S = 1.0
EXAMPLES = 10

EVENTS_SQL = """
SELECT request_id, stage, countIf(status = 'ok') AS ok, countIf(status = 'error') AS errors
FROM stagelog.stage_events
WHERE request_id IN (SELECT arrayJoin({ids:Array(String)}))
GROUP BY request_id, stage
"""
PREDICTIONS_SQL = """
SELECT request_id, model, count() AS n, uniqExact(row) AS distinct_rows
FROM stagelog.predictions
WHERE request_id IN (SELECT arrayJoin({ids:Array(String)}))
GROUP BY request_id, model
"""


@dataclass
class Observed:
    """What the store holds for one request."""

    ok: dict[str, int] = field(default_factory=dict)  # stage -> ok rows
    errors: int = 0
    predictions: dict[str, tuple[int, int]] = field(default_factory=dict)  # model -> (n, distinct)


def expected_kind(sent: Sent) -> str:
    """``answered``, ``refused`` or ``unseen`` (not checked) for one ledger record."""
    if sent.ok:
        return "answered"
    if sent.status in UNSEEN_STATUSES:
        return "unseen"
    return "refused"


def problems(sent: Sent, seen: Observed) -> list[str]:
    """What is missing or duplicated for one request (empty when complete).

    Args:
        sent: The ledger record.
        seen: The store's rows for that request id.
    """
    kind = expected_kind(sent)
    if kind == "unseen":
        return []
    if kind == "refused":
        return [] if seen.errors else ["no error row in stage_events"]
    found: list[str] = []
    for stage in STAGES:
        count = seen.ok.get(stage, 0)
        if count == 0:
            found.append(f"stage_events {stage} missing")
        elif count > 1:
            found.append(f"stage_events {stage} x{count}")
    if seen.errors:
        found.append(f"{seen.errors} unexpected error row(s)")
    for model in PREDICTION_MODELS:
        n, distinct = seen.predictions.get(model, (0, 0))
        if distinct < sent.rows:
            found.append(f"predictions {model}: {distinct}/{sent.rows} rows")
        elif n > sent.rows:
            found.append(f"predictions {model}: {n} rows for {sent.rows}")
    return found


Query = Callable[[str, list[str]], list[list]]


def observe(run_query: Query, ids: Sequence[str]) -> dict[str, Observed]:
    """Fetch the stage_events and predictions rows of ``ids`` (in chunks)."""
    seen: dict[str, Observed] = defaultdict(Observed)
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        for request_id, stage, ok, errors in run_query(EVENTS_SQL, chunk):
            seen[request_id].ok[stage] = int(ok)
            seen[request_id].errors += int(errors)
        for request_id, model, n, distinct in run_query(PREDICTIONS_SQL, chunk):
            seen[request_id].predictions[model] = (int(n), int(distinct))
    return seen


@dataclass
class Report:
    """The outcome of a loss check."""

    counts: dict[str, int]
    incomplete: dict[str, list[str]]  # request id -> problems
    kinds: dict[str, str]  # request id -> expected kind
    waited_s: float

    @property
    def passed(self) -> bool:
        """True when nothing is missing or duplicated."""
        return not self.incomplete


def check(
    sent: Sequence[Sent],
    run_query: Query,
    wait_s: float = DEFAULT_WAIT_S,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Check every ledger record against the store, re-querying the incomplete ones.

    Args:
        sent: Ledger records.
        run_query: ``run_query(sql, ids)`` returns the result rows of ``sql`` for those ids.
        wait_s: How long rows may take to arrive before they count as missing.
        poll_s: Pause between two queries of the still incomplete requests.
        clock: Monotonic clock (tests pass a fake one).
        sleep: Sleep function (tests pass a fake one).
    """
    kinds = {s.request_id: expected_kind(s) for s in sent}
    counts: dict[str, int] = defaultdict(int)
    for kind in kinds.values():
        counts[kind] += 1
    by_id = {s.request_id: s for s in sent if kinds[s.request_id] != "unseen"}
    started = clock()
    pending = list(by_id)
    incomplete: dict[str, list[str]] = {}
    while True:
        seen = observe(run_query, pending)
        incomplete = {}
        for request_id in pending:
            found = problems(by_id[request_id], seen.get(request_id, Observed()))
            if found:
                incomplete[request_id] = found
        pending = list(incomplete)
        if not pending or clock() - started >= wait_s:
            break
        sleep(poll_s)
    return Report(dict(counts), incomplete, kinds, clock() - started)


def render(report: Report, console: Console) -> None:
    """Print the summary table and, when something is missing, examples of what."""
    table = Table(title="loss check: rows in the store per request sent")
    table.add_column("requests")
    table.add_column("expected in the store")
    for column in ("count", "complete", "incomplete"):
        table.add_column(column, justify="right")
    expected = {
        "answered": f"{len(STAGES)} stage rows, {len(PREDICTION_MODELS)} x rows predictions",
        "refused": "an error row in stage_events",
        "unseen": "not checked (transport error)",
    }
    bad_by_kind: dict[str, int] = defaultdict(int)
    for request_id in report.incomplete:
        bad_by_kind[report.kinds[request_id]] += 1
    for kind in ("answered", "refused", "unseen"):
        count = report.counts.get(kind, 0)
        if kind == "unseen":
            table.add_row(kind, expected[kind], str(count), "-", "-")
            continue
        bad = bad_by_kind[kind]
        table.add_row(kind, expected[kind], str(count), str(count - bad), str(bad))
    console.print(table)
    if report.incomplete:
        examples = Table(title=f"incomplete requests (first {EXAMPLES})")
        examples.add_column("request_id")
        examples.add_column("kind")
        examples.add_column("what is missing or duplicated")
        for request_id, found in list(report.incomplete.items())[:EXAMPLES]:
            examples.add_row(request_id, report.kinds[request_id], "; ".join(found))
        console.print(examples)
        console.print(
            f"[bold red]FAIL[/]: {len(report.incomplete)} request(s) incomplete after "
            f"{report.waited_s:.1f} s"
        )
    else:
        console.print(f"[bold green]OK[/]: nothing missing ({report.waited_s:.1f} s)")


def store_query(home: str | Path | None) -> Query:
    """A ``run_query`` over the home's store, the way ``stagelog sql`` reaches it."""
    settings = launcher.settings_from_stack(home)

    def run_query(sql: str, ids: list[str]) -> list[list]:
        result = query.execute(settings, sql, {"ids": ids}, "JSONCompact")
        return json.loads(result)["data"]

    return run_query


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m loadtest.losscheck``."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.losscheck", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "ledgers", nargs="*", type=Path, default=[DEFAULT_REQUEST_LOG],
        help=f"ledger file(s) the load test wrote (default: {DEFAULT_REQUEST_LOG})",
    )  # fmt: skip
    parser.add_argument("--home", help="STAGELOG_HOME of the stack (default: $STAGELOG_HOME)")
    parser.add_argument(
        "--wait", type=float, default=DEFAULT_WAIT_S,
        help=f"seconds rows may take to arrive (default: {DEFAULT_WAIT_S:.0f})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    console = Console()
    try:
        sent = read_ledger(args.ledgers)
        if not sent:
            raise LedgerError(f"no requests in {', '.join(map(str, args.ledgers))}")
        report = check(sent, store_query(args.home), wait_s=args.wait)
    except StagelogError as exc:
        console.print(f"[bold red]error[/]: {exc}")
        return 2
    render(report, console)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
