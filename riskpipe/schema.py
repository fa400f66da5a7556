"""The raw card-payment event, the classes and decisions, and the row-level input error.

A raw event is one JSON object with the fields of ``RAW_FIELDS`` (``../shared/DESIGN.md``).
Only ``event_id`` and ``amount`` are required: a row without them cannot be scored. Every
other field is optional; a missing or malformed optional field is imputed with the value in
``IMPUTE_DEFAULTS`` and a category outside the known vocabularies below becomes ``other``.
"""

from __future__ import annotations

# Classes in the order of every probability vector (PROBABILITIES, PROBS, predictions rows).
CLASSES: tuple[str, ...] = ("legit", "card_fraud", "account_takeover")
N_CLASSES = len(CLASSES)

# What the caller is told to do with an event (riskpipe.aggregate.decide).
DECISIONS: tuple[str, ...] = ("approve", "review", "decline")

RAW_FIELDS: tuple[str, ...] = (
    "event_id",
    "card_id",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "country",
    "channel",
    "device_id",
    "timestamp",
    "card_age_days",
    "ip_risk",
)
REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "amount")

# The category every unknown value maps to; it has its own one-hot column.
OTHER = "other"

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurant",
    "fuel",
    "online_retail",
    "travel",
    "electronics",
    "digital_goods",
    "jewelry",
    "gaming",
)
COUNTRIES: tuple[str, ...] = ("DE", "FR", "NL", "ES", "IT", "GB", "US", "BR", "NG", "RU")
CHANNELS: tuple[str, ...] = ("pos", "contactless", "online", "atm")

# Fixed conversion table (units of EUR per unit of currency), frozen so that training and
# serving convert identically; the rates are rounded mid-2025 values, not live quotes.
EUR_PER_UNIT: dict[str, float] = {
    "EUR": 1.0,
    "USD": 0.92,
    "GBP": 1.17,
    "CHF": 1.06,
    "SEK": 0.088,
    "PLN": 0.23,
    "BRL": 0.17,
    "NGN": 0.0006,
    "RUB": 0.0105,
    "JPY": 0.0061,
}

# Values used when an optional field is missing or malformed. Numbers are the medians of the
# generator's legitimate traffic; ``timestamp`` has no default: the time of arrival is used.
IMPUTE_DEFAULTS: dict[str, object] = {
    "card_id": "unknown",
    "currency": "EUR",
    "merchant_id": "unknown",
    "merchant_category": OTHER,
    "country": OTHER,
    "channel": OTHER,
    "device_id": "unknown",
    "card_age_days": 540.0,
    "ip_risk": 0.08,
}

# Clipping bounds (after conversion to EUR) against outliers and unit mistakes.
CLIP_BOUNDS: dict[str, tuple[float, float]] = {
    "amount_eur": (0.0, 20_000.0),
    "card_age_days": (0.0, 10_000.0),
    "ip_risk": (0.0, 1.0),
}


class RowError(ValueError):
    """Raised when one row of a request cannot be scored; names the row and the field."""

    def __init__(self, row: int, field: str, message: str) -> None:
        super().__init__(f"row {row}: field '{field}': {message}")
        self.row = row
        self.field = field
        self.message = message
