"""Score card-payment events with the `pipeline` ensemble over gRPC.

Events come from the seeded generator (``training.generator``) or a JSONL file; they go out in
batches, one request per batch, each with a request id (a fresh UUID, ``PREFIX-<batch>``, or
none, so that the server makes one). A summary of decisions, classes and latency follows.

Usage::

    python -m clients.score --n 1000 --batch-size 32
    python -m clients.score --jsonl events.jsonl --request-id-prefix run7 --out results.jsonl

The functions (`score_batch`, `score_events`) are what tests, the demo and the load test use.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tritonclient.grpc as grpcclient
import typer
from tritonclient.utils import InferenceServerException

MODEL = "pipeline"
INPUT = "RAW"
OUTPUTS = ("REQUEST_ID", "PROBABILITIES", "DECISION")
CLASSES = ("legit", "card_fraud", "account_takeover")

Event = dict[str, Any] | str | bytes


@dataclass
class ScoreResult:
    """The answer to one request: one decision and one probability vector per row."""

    request_id: str
    probabilities: np.ndarray
    decisions: list[str]
    latency_ms: float

    @property
    def classes(self) -> list[str]:
        """The most probable class of each row."""
        return [CLASSES[i] for i in np.argmax(self.probabilities, axis=1)]


def encode(event: Event) -> bytes:
    """Return the wire form of one row: a dict as compact JSON, text and bytes as they are."""
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode("utf-8")
    return json.dumps(event, separators=(",", ":")).encode("utf-8")


def raw_input(events: Sequence[Event]) -> grpcclient.InferInput:
    """Build the ``RAW`` input tensor (BYTES, shape ``[rows, 1]``) of a batch."""
    data = np.array([[encode(e)] for e in events], dtype=np.object_).reshape(len(events), 1)
    tensor = grpcclient.InferInput(INPUT, list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def score_batch(
    client: grpcclient.InferenceServerClient,
    events: Sequence[Event],
    request_id: str | None = None,
    timeout_s: float | None = 60.0,
) -> ScoreResult:
    """Send one batch of events as one request and return the decisions.

    Args:
        client: A connected ``tritonclient.grpc`` client.
        events: Raw events: dicts (sent as JSON) or already-encoded JSON strings/bytes (bad rows
            are sent as given).
        request_id: The request id to send; None sends none and the server generates one.
        timeout_s: Client-side deadline of the call.

    Returns:
        The request id the server echoed (or generated), probabilities ``[rows, 3]``, decisions.

    Raises:
        tritonclient.utils.InferenceServerException: The server refused the request
            (``status()`` is ``StatusCode.INVALID_ARGUMENT`` for bad rows).
    """
    outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
    started = time.perf_counter()
    result = client.infer(
        MODEL,
        [raw_input(events)],
        outputs=outputs,
        request_id=request_id or "",
        client_timeout=timeout_s,
    )
    latency_ms = (time.perf_counter() - started) * 1000.0
    ids = result.as_numpy("REQUEST_ID").reshape(-1)
    decisions = [_text(d) for d in result.as_numpy("DECISION").reshape(-1)]
    probabilities = result.as_numpy("PROBABILITIES").reshape(len(decisions), len(CLASSES))
    return ScoreResult(_text(ids[0]) if len(ids) else "", probabilities, decisions, latency_ms)


@dataclass
class Summary:
    """Counts and latencies over a scoring run."""

    requests: int = 0
    rows: int = 0
    failed_requests: int = 0
    failed_rows: int = 0
    decisions: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, result: ScoreResult) -> None:
        """Count one answered request."""
        self.requests += 1
        self.rows += len(result.decisions)
        self.decisions.update(result.decisions)
        self.classes.update(result.classes)
        self.latencies_ms.append(result.latency_ms)

    def add_error(self, rows: int, error: InferenceServerException) -> None:
        """Count one refused request."""
        self.requests += 1
        self.failed_requests += 1
        self.failed_rows += rows
        self.errors.append(f"{error.status()}: {error.message()}")

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) of the answered requests, in ms."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def batches(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    """Split events into lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def request_ids(prefix: str | None, generate: bool = True) -> Iterator[str | None]:
    """Yield request ids: ``PREFIX-<n>``, a UUID4 each, or None (the server makes one)."""
    count = 0
    while True:
        if prefix:
            yield f"{prefix}-{count}"
        elif generate:
            yield str(uuid.uuid4())
        else:
            yield None
        count += 1


def score_events(
    client: grpcclient.InferenceServerClient,
    events: Sequence[Event],
    batch_size: int = 32,
    ids: Iterator[str | None] | None = None,
    on_result: Any = None,
) -> Summary:
    """Score events batch by batch; a refused batch is counted, not raised.

    Args:
        client: A connected ``tritonclient.grpc`` client.
        events: The events to send.
        batch_size: Rows per request.
        ids: Request ids per batch (default: a UUID each).
        on_result: Called as ``on_result(batch, result_or_error)`` after every request.

    Returns:
        The run's summary.
    """
    ids = ids or request_ids(None)
    summary = Summary()
    started = time.perf_counter()
    for batch in batches(events, batch_size):
        try:
            result: ScoreResult | InferenceServerException = score_batch(
                client, batch, next(ids)
            )
            summary.add(result)
        except InferenceServerException as error:
            result = error
            summary.add_error(len(batch), error)
        if on_result is not None:
            on_result(batch, result)
    summary.wall_s = time.perf_counter() - started
    return summary


def _event_id(event: Event) -> str | None:
    """The event's ``event_id`` if it has one (JSONL lines are parsed only for this)."""
    if not isinstance(event, dict):
        try:
            event = json.loads(event)
        except ValueError:
            return None
    value = event.get("event_id") if isinstance(event, dict) else None
    return None if value is None else str(value)


def load_jsonl(path: Path) -> list[str]:
    """Read events from a JSONL file: one raw JSON line per event (sent as is)."""
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def generated_events(n: int, seed: int, drift: float = 0.0, dirty: float = 0.0) -> list[dict]:
    """Events from the seeded generator (``training.generator``)."""
    from training.generator import generate  # noqa: PLC0415 - only this path needs it

    return [item.event for item in generate(n, seed, drift=drift, dirty=dirty)]


def default_grpc_url(home: Path | None = None) -> str:
    """``127.0.0.1:<port>`` of the stack running in ``home`` (else STAGELOG_GRPC_PORT/8001)."""
    from logging_backend.stack.launcher import settings_from_stack  # noqa: PLC0415

    return f"127.0.0.1:{settings_from_stack(home).grpc_port}"


def print_summary(summary: Summary, console: Any) -> None:
    """Print decisions, classes and latency as rich tables."""
    from rich.table import Table  # noqa: PLC0415

    scored = summary.rows
    table = Table(title=f"{scored} events scored in {summary.requests} requests")
    table.add_column("decision")
    table.add_column("events", justify="right")
    table.add_column("share", justify="right")
    for decision in ("approve", "review", "decline"):
        count = summary.decisions.get(decision, 0)
        table.add_row(decision, str(count), f"{count / scored:.1%}" if scored else "-")
    console.print(table)
    classes = Table(title="most probable class")
    classes.add_column("class")
    classes.add_column("events", justify="right")
    for name in CLASSES:
        classes.add_row(name, str(summary.classes.get(name, 0)))
    console.print(classes)
    if summary.latencies_ms:
        console.print(
            f"latency per request: median {statistics.median(summary.latencies_ms):.2f} ms, "
            f"p90 {summary.percentile(90):.2f} ms, p99 {summary.percentile(99):.2f} ms; "
            f"{scored / summary.wall_s:.0f} events/s over {summary.wall_s:.2f} s"
        )
    if summary.failed_requests:
        console.print(
            f"[red]{summary.failed_requests} requests ({summary.failed_rows} events) refused[/red]"
        )
        for error in summary.errors[:5]:
            console.print(f"  {error}")


app = typer.Typer(add_completion=False)


@app.command()
def main(
    n: Annotated[int, typer.Option(help="Events to generate (ignored with --jsonl).")] = 1000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    drift: Annotated[float, typer.Option(help="Generator drift in [0, 1].")] = 0.0,
    dirty: Annotated[float, typer.Option(help="Generator dirty-data fraction in [0, 1].")] = 0.0,
    jsonl: Annotated[
        Path | None, typer.Option(help="Send the events of this JSONL file instead.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events per request.")] = 32,
    url: Annotated[
        str | None, typer.Option(help="Triton gRPC host:port (default: the running stack).")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="STAGELOG_HOME of the running stack.")] = None,
    request_id_prefix: Annotated[
        str | None, typer.Option(help="Request ids PREFIX-0, PREFIX-1, ... (default: UUIDs).")
    ] = None,
    server_ids: Annotated[
        bool, typer.Option("--server-ids", help="Send no request id; the server makes one.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write one JSON line per scored event here.")
    ] = None,
) -> None:
    """Score events with the `pipeline` ensemble and print a summary."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress  # noqa: PLC0415

    console = Console(stderr=False)
    try:
        events: Sequence[Event] = (
            load_jsonl(jsonl) if jsonl else generated_events(n, seed, drift, dirty)
        )
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    target = url or default_grpc_url(home)
    client = grpcclient.InferenceServerClient(target)
    try:
        if not client.is_model_ready(MODEL):
            console.print(f"[red]error:[/red] model {MODEL!r} is not ready at {target}")
            raise typer.Exit(1)
    except InferenceServerException as exc:
        console.print(f"[red]error:[/red] no Triton at {target} ({exc.message()}); "
                      "start it with `stagelog up`")
        raise typer.Exit(1) from None
    sink = out.open("w", encoding="utf-8") if out else None

    def record(batch: list[Event], result: ScoreResult | InferenceServerException) -> None:
        progress.advance(task, len(batch))
        if sink is None or isinstance(result, InferenceServerException):
            return
        for row, (event, decision) in enumerate(zip(batch, result.decisions, strict=True)):
            event_id = _event_id(event)
            sink.write(
                json.dumps(
                    {
                        "request_id": result.request_id,
                        "row": row,
                        "event_id": event_id,
                        "decision": decision,
                        "probabilities": [round(float(p), 6) for p in result.probabilities[row]],
                    }
                )
                + "\n"
            )

    ids = request_ids(request_id_prefix, generate=not server_ids)
    with Progress(console=console, transient=True, disable=len(events) < 2000) as progress:
        task = progress.add_task("scoring", total=len(events))
        try:
            summary = score_events(client, events, batch_size, ids, on_result=record)
        finally:
            if sink is not None:
                sink.close()
    print_summary(summary, console)
    if summary.failed_requests:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(app())
