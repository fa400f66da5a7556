"""Validation and records for the `feedback` model: actions taken and true labels.

A caller reports, for one scored row ``(request_id, row)``, either the action it took with
the decision (``KIND=action``) or, later, the true class (``KIND=label``).

What is checked here, in the stage process, before anything is written:

- ``REQUEST_ID``: the one request-id rule of ``riskpipe.limits`` (the one `preprocess`
  applies to scoring requests): 1 to 128 characters of ``A-Z a-z 0-9 - _ . : / + = @``.
  The stage cannot ask ClickHouse whether the id exists (stage processes never talk to the
  store, and a registry in one stub process knows nothing of the others), so an id that has
  the right form but was never scored is accepted here and shown by the SQL view
  ``feedback_unmatched`` (migration 0011), which lists every report whose
  ``(request_id, row)`` has no prediction.
- ``ROW``: an integer >= 0.
- ``KIND``: ``action`` or ``label``.
- ``VALUE``: for an action, one of ``ACTIONS``; for a label, one of ``riskpipe.schema.CLASSES``.
- ``DETAIL``: empty, or a JSON object of at most 4096 characters nested at most
  ``riskpipe.limits.MAX_JSON_DEPTH`` deep, holding valid Unicode only. For an action,
  ``{"executed": false}`` records that the action was decided but not carried out (default:
  carried out).

A bad row fails the whole request with a message naming the row and the field, so a batch is
written completely or not at all.

Repeated reports are idempotent: ``report_id`` is a UUID5 of ``(request_id, row, kind,
value)`` and every view over ``actions`` / ``labels`` (migration 0010) keeps one row per
report id. A different value for the same row (a corrected label) is a new report; the views
use the latest one.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from logging_backend.errors import InvalidInput
from riskpipe import limits
from riskpipe.schema import CLASSES

KINDS: tuple[str, ...] = ("action", "label")

# What a caller may report having done with a decision. The three decisions themselves, plus
# the outcomes of a manual review and the stronger measures a risk team takes.
ACTIONS: tuple[str, ...] = (
    "approve",
    "review",
    "decline",
    "step_up_auth",
    "block_card",
    "no_action",
)

MAX_REQUEST_ID_LEN = limits.MAX_REQUEST_ID_LEN
MAX_DETAIL_LEN = 4096

# Fixed namespace so that every process derives the same report id from the same report.
REPORT_NAMESPACE = uuid.UUID("6f1d0c2a-7e0b-5a43-9c1e-3b7a2f4d8e55")


class FeedbackError(InvalidInput):
    """Raised when a feedback row is malformed; the message names the row and the field."""

    def __init__(self, row: int, field_name: str, problem: str) -> None:
        super().__init__(f"row {row}: field '{field_name}': {problem}")
        self.row = row
        self.field = field_name


@dataclass(frozen=True)
class Report:
    """One validated feedback report."""

    request_id: str
    row: int
    kind: str
    value: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def report_id(self) -> str:
        """Deterministic id: the same report always gets the same id."""
        return report_id(self.request_id, self.row, self.kind, self.value)

    @property
    def executed(self) -> bool:
        """Whether the reported action was carried out (always true for labels)."""
        return bool(self.detail.get("executed", True))


def report_id(request_id: str, row: int, kind: str, value: str) -> str:
    """Return the UUID5 that identifies a report of ``value`` for ``(request_id, row)``."""
    return str(uuid.uuid5(REPORT_NAMESPACE, f"{request_id}\x1f{row}\x1f{kind}\x1f{value}"))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _check_request_id(index: int, raw: Any) -> str:
    try:
        value = _text(raw)
    except (TypeError, UnicodeDecodeError) as exc:
        raise FeedbackError(index, "REQUEST_ID", f"not UTF-8 text ({exc})") from None
    problem = limits.request_id_problem(value)
    if problem:
        raise FeedbackError(index, "REQUEST_ID", problem)
    return value


def _check_row(index: int, raw: Any) -> int:
    if isinstance(raw, bool) or raw is None:
        raise FeedbackError(index, "ROW", f"not an integer: {raw!r}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise FeedbackError(index, "ROW", f"not an integer: {raw!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise FeedbackError(index, "ROW", f"not an integer: {raw!r}")
    if number < 0:
        raise FeedbackError(index, "ROW", f"must be >= 0, got {int(number)}")
    return int(number)


def _check_choice(index: int, name: str, raw: Any, choices: Sequence[str]) -> str:
    try:
        value = _text(raw).strip()
    except (TypeError, UnicodeDecodeError) as exc:
        raise FeedbackError(index, name, f"not UTF-8 text ({exc})") from None
    if value not in choices:
        raise FeedbackError(index, name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _check_detail(index: int, raw: Any, kind: str) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        text = _text(raw).strip()
    except (TypeError, UnicodeDecodeError) as exc:
        raise FeedbackError(index, "DETAIL", f"not UTF-8 text ({exc})") from None
    if not text:
        return {}
    if len(text) > MAX_DETAIL_LEN:
        raise FeedbackError(index, "DETAIL", f"longer than {MAX_DETAIL_LEN} characters")
    problem = limits.json_text_problem(text, max_bytes=4 * MAX_DETAIL_LEN)
    if problem:
        raise FeedbackError(index, "DETAIL", problem)
    try:
        detail = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedbackError(index, "DETAIL", f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError):  # ints over 4300 digits
        raise FeedbackError(index, "DETAIL", "not valid JSON") from None
    if not isinstance(detail, dict):
        raise FeedbackError(index, "DETAIL", "must be a JSON object")
    if limits.may_hold_surrogate(text) and limits.find_surrogate(detail) is not None:
        where = limits.find_surrogate(detail)
        raise FeedbackError(
            index, "DETAIL", f"invalid Unicode at {where} (a lone surrogate is not UTF-8 text)"
        )
    if kind == "action" and "executed" in detail and not isinstance(detail["executed"], bool):
        raise FeedbackError(index, "DETAIL", "'executed' must be true or false")
    return detail


def validate_row(
    index: int, request_id: Any, row: Any, kind: Any, value: Any, detail: Any = None
) -> Report:
    """Validate one feedback row.

    Args:
        index: position of the row in the batch (used in error messages).
        request_id: the id of the scoring request (str or UTF-8 bytes).
        row: the row of that request the report is about.
        kind: ``action`` or ``label``.
        value: the action taken or the true class name.
        detail: optional JSON object text.

    Returns:
        The validated report.

    Raises:
        FeedbackError: naming the row and the field that is wrong.
    """
    rid = _check_request_id(index, request_id)
    row_number = _check_row(index, row)
    checked_kind = _check_choice(index, "KIND", kind, KINDS)
    choices = ACTIONS if checked_kind == "action" else CLASSES
    checked_value = _check_choice(index, "VALUE", value, choices)
    checked_detail = _check_detail(index, detail, checked_kind)
    return Report(rid, row_number, checked_kind, checked_value, checked_detail)


def int_column(name: str, array: Any) -> list[int]:
    """Turn a ``[rows, 1]`` integer input tensor into a list (the ``ROW`` input).

    Raises:
        FeedbackError: missing, not an integer tensor, or not ``[rows, 1]`` (reported at row 0).
    """
    if array is None:
        raise FeedbackError(0, name, "input missing")
    arr = np.asarray(array)
    if arr.dtype.kind not in "iu":
        raise FeedbackError(0, name, f"must be TYPE_INT32, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 1:
        raise FeedbackError(0, name, f"must have shape [rows, 1], got {list(arr.shape)}")
    return [int(x) for x in arr[:, 0]]


def validate_batch(
    request_ids: Sequence[Any],
    rows: Sequence[Any],
    kinds: Sequence[Any],
    values: Sequence[Any],
    details: Sequence[Any] | None = None,
) -> list[Report]:
    """Validate a batch of feedback rows (one entry per row in every sequence).

    Raises:
        FeedbackError: for the first bad row; an empty batch or ragged inputs is row 0.
    """
    count = len(request_ids)
    if count == 0:
        raise FeedbackError(0, "REQUEST_ID", "empty batch: no rows to record")
    named = {"ROW": rows, "KIND": kinds, "VALUE": values}
    if details is not None:
        named["DETAIL"] = details
    for name, column in named.items():
        if len(column) != count:
            raise FeedbackError(
                0, name, f"has {len(column)} rows but REQUEST_ID has {count}"
            )
    return [
        validate_row(
            i,
            request_ids[i],
            rows[i],
            kinds[i],
            values[i],
            None if details is None else details[i],
        )
        for i in range(count)
    ]


def table_rows(
    reports: Sequence[Report], now: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Split reports into rows of the ``actions`` and ``labels`` tables (migration 0002).

    Args:
        reports: validated reports.
        now: report time; defaults to the current UTC time.

    Returns:
        ``{"actions": [...], "labels": [...]}``, each row a dict of column values.
    """
    stamp = now or datetime.now(timezone.utc)
    out: dict[str, list[dict[str, Any]]] = {"actions": [], "labels": []}
    for report in reports:
        table = "actions" if report.kind == "action" else "labels"
        out[table].append(
            {
                "ts": stamp,
                "request_id": report.request_id,
                "row": report.row,
                "value": report.value,
                "detail": json.dumps(report.detail, sort_keys=True) if report.detail else "",
                "report_id": report.report_id,
            }
        )
    return out
