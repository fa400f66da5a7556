"""Stage `preprocess`: raw JSON events in, cleaned rows out.

Per row, in order:

1. Parse: UTF-8 JSON object, else ``RowError`` (field ``RAW``).
2. Validate the required fields: ``event_id`` (non-empty string or integer) and ``amount``
   (a finite number >= 0). A violation raises ``RowError`` naming the row and the field; the
   whole request fails and no state changes.
3. Impute each optional field that is missing or malformed with
   ``schema.IMPUTE_DEFAULTS`` (a missing ``timestamp`` becomes the time of arrival); the
   field names go into ``imputed``.
4. Map unknown categories (currency, merchant_category, country, channel) to ``other``; the
   field names go into ``unknown_category``. An unknown currency is taken as EUR.
5. Convert ``amount`` to ``amount_eur`` with the fixed table ``schema.EUR_PER_UNIT``.
6. Clip ``amount_eur``, ``card_age_days`` and ``ip_risk`` to ``schema.CLIP_BOUNDS``; clipped
   fields go into ``clipped``.
7. Flag ``duplicate`` when the ``event_id`` was seen among the last ``dedup_capacity`` ids
   of this process (a bounded LRU). Duplicates are still scored, and flagged.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from riskpipe import schema
from riskpipe.replay import ReplayState
from riskpipe.schema import RowError

_CATEGORY_VOCAB: dict[str, tuple[tuple[str, ...], Callable[[str], str]]] = {
    "currency": (tuple(schema.EUR_PER_UNIT), str.upper),
    "merchant_category": (schema.MERCHANT_CATEGORIES, str.lower),
    "country": (schema.COUNTRIES, str.upper),
    "channel": (schema.CHANNELS, str.lower),
}
_ID_FIELDS = ("card_id", "merchant_id", "device_id")
_NUMBER_FIELDS = ("card_age_days", "ip_risk")

DEFAULT_DEDUP_CAPACITY = 100_000


def _now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_float(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number, else ``None``."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp (``Z`` or an offset; naive means UTC), else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """Format a UTC datetime as ISO 8601 with milliseconds and ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_row(raw: bytes | str, row: int) -> dict[str, Any]:
    """Decode one raw row and check its required fields.

    Args:
        raw: the row as received (UTF-8 JSON object).
        row: its index in the request (0-based), for error messages.

    Returns:
        The decoded JSON object, with ``event_id`` normalised to a string.

    Raises:
        RowError: the row is not a JSON object, or ``event_id``/``amount`` is invalid.
    """
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise RowError(row, "RAW", "not valid UTF-8") from None
    try:
        event = json.loads(raw)
    except (ValueError, TypeError, RecursionError):  # ValueError: also ints over 4300 digits
        raise RowError(row, "RAW", f"not valid JSON: {_short(raw)}") from None
    if not isinstance(event, dict):
        raise RowError(row, "RAW", f"not a JSON object: {_short(event)}")

    event_id = event.get("event_id")
    if event_id is None:
        raise RowError(row, "event_id", "missing (required)")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id.strip():
        raise RowError(row, "event_id", f"must be a non-empty string, got {_short(event_id)}")
    event["event_id"] = event_id.strip()

    if "amount" not in event or event["amount"] is None:
        raise RowError(row, "amount", "missing (required)")
    amount = _finite_float(event["amount"])
    if amount is None or amount < 0:
        got = _short(event["amount"])
        raise RowError(row, "amount", f"must be a finite number >= 0, got {got}")
    event["amount"] = amount
    return event


def clean_event(event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Impute, map unknown categories, convert currency and clip one validated event.

    Args:
        event: the output of ``parse_row``.
        now: the time of arrival, used for a missing timestamp.

    Returns:
        The processed row (without the ``duplicate`` flag, which needs the stage's state).
    """
    imputed: list[str] = []
    unknown: list[str] = []
    clipped: list[str] = []
    out: dict[str, Any] = {"event_id": event["event_id"]}

    for field in _ID_FIELDS:
        value = event.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            value = schema.IMPUTE_DEFAULTS[field]
            imputed.append(field)
        out[field] = value.strip()

    for field, (vocab, normalise) in _CATEGORY_VOCAB.items():
        value = event.get(field)
        if not isinstance(value, str) or not value.strip():
            out[field] = schema.IMPUTE_DEFAULTS[field]
            imputed.append(field)
            continue
        value = normalise(value.strip())
        if value not in vocab:
            value = schema.OTHER
            unknown.append(field)
        out[field] = value

    amount = float(event["amount"])
    out["amount"] = amount
    out["amount_eur"] = amount * schema.EUR_PER_UNIT.get(out["currency"], 1.0)

    for field in _NUMBER_FIELDS:
        value = _finite_float(event.get(field))
        if value is None:
            value = float(schema.IMPUTE_DEFAULTS[field])
            imputed.append(field)
        out[field] = value

    for field, (low, high) in schema.CLIP_BOUNDS.items():
        value = out[field]
        if value < low or value > high:
            out[field] = min(max(value, low), high)
            clipped.append(field)

    moment = parse_timestamp(event.get("timestamp"))
    if moment is None:
        moment = now
        imputed.append("timestamp")
    out["timestamp"] = format_timestamp(moment)
    out["ts"] = moment.timestamp()

    out["imputed"] = imputed
    out["unknown_category"] = unknown
    out["clipped"] = clipped
    return out


class Preprocessor:
    """The preprocess stage with its per-process state (recently seen event ids).

    Args:
        dedup_capacity: how many recent event ids are remembered for duplicate flags.
        clock: returns the time of arrival (UTC datetime); injectable for tests.
    """

    def __init__(
        self,
        dedup_capacity: int = DEFAULT_DEDUP_CAPACITY,
        clock: Callable[[], datetime] = _now_utc,
    ) -> None:
        if dedup_capacity < 1:
            raise ValueError(f"dedup_capacity must be >= 1, got {dedup_capacity}")
        self.dedup_capacity = dedup_capacity
        self._clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _mark_seen(self, event_id: str) -> bool:
        """Remember ``event_id``; return whether it was already remembered."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return True
        self._seen[event_id] = None
        if len(self._seen) > self.dedup_capacity:
            self._seen.popitem(last=False)
        return False

    def process(
        self, raws: Sequence[bytes | str], replay: ReplayState | None = None
    ) -> list[dict[str, Any]]:
        """Process one request's rows.

        Every row is validated before any state changes, so a failed request leaves the
        duplicate memory as it was.

        Args:
            raws: the raw rows (UTF-8 JSON objects).
            replay: for a replay (``riskpipe.replay``): the logged duplicate flags and time of
                arrival are used instead of the live ones, and the duplicate memory is left
                as it is.

        Returns:
            One processed dict per row, in order.

        Raises:
            RowError: the first row that cannot be scored.
            ReplayError: the replay state does not fit the request.
        """
        events = [parse_row(raw, row) for row, raw in enumerate(raws)]
        if replay is not None:
            flags = replay.duplicates_for(len(events))
            now = self._clock() if replay.arrival_ts is None else _from_epoch(replay.arrival_ts)
            rows = [clean_event(event, now) for event in events]
            for row, flag in zip(rows, flags, strict=True):
                row["duplicate"] = flag
            return rows
        now = self._clock()
        rows = [clean_event(event, now) for event in events]
        for row in rows:
            row["duplicate"] = self._mark_seen(row["event_id"])
        return rows


def dumps_row(row: dict[str, Any]) -> bytes:
    """Serialise a processed row for the ``PROCESSED`` tensor (compact UTF-8 JSON)."""
    return json.dumps(row, separators=(",", ":"), allow_nan=False).encode("utf-8")


def loads_row(data: bytes | str, row: int) -> dict[str, Any]:
    """Decode one ``PROCESSED`` row; ``RowError`` when it is not a JSON object."""
    try:
        value = json.loads(data)
    except (ValueError, TypeError, RecursionError):
        raise RowError(row, "PROCESSED", "not valid JSON") from None
    if not isinstance(value, dict):
        raise RowError(row, "PROCESSED", "not a JSON object")
    return value
