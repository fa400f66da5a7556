"""Report what was done with a decision, and the true label, to the `feedback` model over gRPC.

Each report names a scored row ``(request_id, row)``. ``report_action`` says what the caller did
(``approve``, ``review``, ``decline``, ``step_up_auth``, ``block_card``, ``no_action``) and
whether it was carried out; ``report_label`` gives the true class once known. Both return the
report id (the ``ACK``); sending the same report again returns the same id and is stored once.
A bad report raises ``InferenceServerException`` (INVALID_ARG) naming the row and the field.

Usage::

    python -m clients.feedback action REQUEST_ID ROW decline --not-executed --detail '{"by": "ops"}'
    python -m clients.feedback label REQUEST_ID ROW card_fraud
    python -m clients.feedback file reports.jsonl  # {request_id, row, label|action} per line
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tritonclient.grpc as grpcclient
import typer
from tritonclient.utils import InferenceServerException

MODEL = "feedback"


@dataclass(frozen=True)
class FeedbackReport:
    """One report as sent: ``kind`` is ``action`` or ``label``."""

    request_id: str
    row: int
    kind: str
    value: str
    detail: dict[str, Any] | None = None


def _strings(name: str, values: Sequence[str]) -> grpcclient.InferInput:
    data = np.array([[v.encode("utf-8")] for v in values], dtype=np.object_).reshape(-1, 1)
    tensor = grpcclient.InferInput(name, list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def send_reports(
    client: grpcclient.InferenceServerClient,
    reports: Sequence[FeedbackReport],
    request_id: str = "",
) -> list[str]:
    """Send reports in one request; returns the report id of each (same order).

    Raises:
        InferenceServerException: the server refused the batch (no row of it is stored).
        ValueError: ``reports`` is empty.
    """
    if not reports:
        raise ValueError("no reports to send")
    rows = np.array([[r.row] for r in reports], dtype=np.int32)
    row_input = grpcclient.InferInput("ROW", list(rows.shape), "INT32")
    row_input.set_data_from_numpy(rows)
    inputs = [
        _strings("REQUEST_ID", [r.request_id for r in reports]),
        row_input,
        _strings("KIND", [r.kind for r in reports]),
        _strings("VALUE", [r.value for r in reports]),
    ]
    if any(r.detail for r in reports):
        inputs.append(
            _strings("DETAIL", [json.dumps(r.detail) if r.detail else "" for r in reports])
        )
    result = client.infer(
        MODEL, inputs, outputs=[grpcclient.InferRequestedOutput("ACK")], request_id=request_id
    )
    acks = result.as_numpy("ACK")
    return [a.decode("utf-8") if isinstance(a, bytes) else str(a) for a in acks.reshape(-1)]


def report_action(
    client: grpcclient.InferenceServerClient,
    request_id: str,
    row: int,
    action: str,
    executed: bool = True,
    detail: dict[str, Any] | None = None,
) -> str:
    """Report the action taken for one scored row; returns the report id."""
    merged = dict(detail or {})
    if not executed:
        merged["executed"] = False
    return send_reports(client, [FeedbackReport(request_id, row, "action", action, merged)])[0]


def report_label(
    client: grpcclient.InferenceServerClient,
    request_id: str,
    row: int,
    label: str,
    detail: dict[str, Any] | None = None,
) -> str:
    """Report the true class of one scored row; returns the report id."""
    return send_reports(client, [FeedbackReport(request_id, row, "label", label, detail)])[0]


def reports_from_lines(lines: Iterable[str]) -> list[FeedbackReport]:
    """Parse JSONL lines ``{request_id, row, label | action [, executed, detail]}``.

    Raises:
        ValueError: a line is not such an object (the message gives the line number).
    """
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            detail = dict(item.get("detail") or {})
            if "label" in item:
                out.append(FeedbackReport(item["request_id"], int(item["row"]), "label",
                                          item["label"], detail or None))
            else:
                if item.get("executed") is False:
                    detail["executed"] = False
                out.append(FeedbackReport(item["request_id"], int(item["row"]), "action",
                                          item["action"], detail or None))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"line {number}: expected {{request_id, row, label|action}}: {exc}"
            ) from None
    return out


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])

Url = Annotated[
    str | None, typer.Option(help="Triton gRPC host:port (default: the running stack).")
]


def _client(url: str | None) -> grpcclient.InferenceServerClient:
    if url is None:
        from clients.score import default_grpc_url  # noqa: PLC0415

        url = default_grpc_url()
    return grpcclient.InferenceServerClient(url)


def _send(url: str | None, reports: list[FeedbackReport], batch_size: int = 256) -> None:
    client = _client(url)
    try:
        for start in range(0, len(reports), batch_size):
            for ack in send_reports(client, reports[start : start + batch_size]):
                typer.echo(ack)
    except InferenceServerException as exc:
        typer.echo(f"refused: {exc.message()}", err=True)
        raise typer.Exit(1) from None


@app.command()
def action(
    request_id: str,
    row: int,
    value: Annotated[str, typer.Argument(help="The action taken, e.g. decline.")],
    not_executed: Annotated[
        bool, typer.Option("--not-executed", help="Decided but not carried out.")
    ] = False,
    detail: Annotated[str | None, typer.Option(help="Extra JSON object.")] = None,
    url: Url = None,
) -> None:
    """Report the action taken for one scored row; prints the report id."""
    extra = json.loads(detail) if detail else {}
    if not_executed:
        extra["executed"] = False
    _send(url, [FeedbackReport(request_id, row, "action", value, extra or None)])


@app.command()
def label(
    request_id: str,
    row: int,
    value: Annotated[str, typer.Argument(help="The true class, e.g. card_fraud.")],
    url: Url = None,
) -> None:
    """Report the true class of one scored row; prints the report id."""
    _send(url, [FeedbackReport(request_id, row, "label", value)])


@app.command("file")
def from_file(path: Path, url: Url = None) -> None:
    """Send every report of a JSONL file ({request_id, row, label|action}) in batches."""
    try:
        reports = reports_from_lines(path.read_text(encoding="utf-8").splitlines())
    except (OSError, ValueError) as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(2) from None
    _send(url, reports)


if __name__ == "__main__":
    app()
