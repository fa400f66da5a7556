"""Replaying a logged request: the state a stateful stage must use instead of its live state.

Two stages keep state between requests: ``preprocess`` remembers recent ``event_id`` s (the
``duplicate`` flag) and stamps rows without a timestamp with the time of arrival, and
``features`` keeps per-card history. Sending a logged ``RAW`` again would therefore change
their outputs (every event is now a duplicate, the card has one more event in its history)
and would change the live state that production requests see next.

A replay request carries the request parameter ``stagelog_replay``: a JSON object with the
id of the request it replays and the state that request was served with, as logged:

- ``of``: the replayed request id;
- ``duplicate``: the ``duplicate`` flag of every row (from the logged ``PROCESSED`` rows);
- ``arrival_ts``: the time of arrival in epoch seconds (the ``ts`` of a row whose timestamp
  was imputed), or null;
- ``card_state``: the per-card state every row was scored with (the logged ``card_state.*``
  rows: ``txn_count``, ``mean_amount_eur``, ``velocity_1h``, ``velocity_24h``,
  ``last_device_id``), or null.

With it, both stages compute from the logged state and leave their live state untouched.
Triton copies an ensemble request's parameters into every composing request, so one
parameter on the ``pipeline`` request reaches every stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PARAMETER = "stagelog_replay"
CARD_STATE_FIELDS = ("txn_count", "mean_amount_eur", "velocity_1h", "velocity_24h",
                     "last_device_id", "updated")


class ReplayError(ValueError):
    """Raised when a replay parameter is not a usable replay state."""


@dataclass(frozen=True)
class ReplayState:
    """What a replay request tells the stateful stages."""

    of: str
    duplicate: tuple[bool, ...] | None = None
    arrival_ts: float | None = None
    card_state: Mapping[str, Sequence[Any]] | None = None

    def to_json(self) -> str:
        """The value of the ``stagelog_replay`` request parameter."""
        return json.dumps(
            {
                "of": self.of,
                "duplicate": None if self.duplicate is None else list(self.duplicate),
                "arrival_ts": self.arrival_ts,
                "card_state": None
                if self.card_state is None
                else {k: list(v) for k, v in self.card_state.items()},
            },
            separators=(",", ":"),
            allow_nan=False,
        )

    def duplicates_for(self, rows: int) -> list[bool]:
        """The logged duplicate flags, checked against the row count."""
        if self.duplicate is None or len(self.duplicate) != rows:
            got = None if self.duplicate is None else len(self.duplicate)
            raise ReplayError(f"replay of {self.of}: {rows} rows but duplicate flags for {got}")
        return [bool(d) for d in self.duplicate]

    def card_rows(self, rows: int) -> list[dict[str, Any]]:
        """The logged card state, one dict per row, checked against the row count."""
        state = self.card_state
        if state is None or any(len(state.get(k, ())) != rows for k in CARD_STATE_FIELDS):
            raise ReplayError(f"replay of {self.of}: no logged card state for {rows} rows")
        return [{k: state[k][i] for k in CARD_STATE_FIELDS} for i in range(rows)]


def parse(value: str) -> ReplayState:
    """Decode a ``stagelog_replay`` parameter value.

    Raises:
        ReplayError: not a JSON object with a string ``of``.
    """
    try:
        doc = json.loads(value)
    except (TypeError, ValueError):
        raise ReplayError("stagelog_replay: not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("of"), str) or not doc["of"]:
        raise ReplayError("stagelog_replay: must be a JSON object with a string 'of'")
    duplicate = doc.get("duplicate")
    arrival = doc.get("arrival_ts")
    card_state = doc.get("card_state")
    if duplicate is not None and not isinstance(duplicate, list):
        raise ReplayError("stagelog_replay: 'duplicate' must be a list")
    if arrival is not None and (isinstance(arrival, bool) or not isinstance(arrival, (int, float))):
        raise ReplayError("stagelog_replay: 'arrival_ts' must be a number")
    if card_state is not None and not isinstance(card_state, dict):
        raise ReplayError("stagelog_replay: 'card_state' must be an object")
    return ReplayState(
        of=doc["of"],
        duplicate=None if duplicate is None else tuple(bool(d) for d in duplicate),
        arrival_ts=None if arrival is None else float(arrival),
        card_state=card_state,
    )


def from_request(request: Any) -> ReplayState | None:
    """The replay state of a Triton request (``request.parameters()`` JSON), or None.

    Raises:
        ReplayError: the request carries ``stagelog_replay`` but it cannot be used.
    """
    try:
        params = json.loads(request.parameters() or "{}")
    except (AttributeError, TypeError, ValueError):
        return None
    value = params.get(PARAMETER) if isinstance(params, dict) else None
    if value is None:
        return None
    return parse(str(value))
