"""Stage `features`: processed rows in, one float32 feature vector per row out.

The layout is ``FEATURE_NAMES`` (``N_FEATURES`` columns):

- ``log_amount_eur``: ``log1p(amount_eur)``.
- ``hour_sin``, ``hour_cos``: the UTC hour of day (with minutes) on the unit circle.
- ``log_card_age_days``: ``log1p(card_age_days)``; ``ip_risk`` as is.
- per-card aggregates from the history *before* this event (this process's state):
  ``card_txn_count_log`` (``log1p`` of the events seen), ``card_mean_amount_log``
  (``log1p`` of the running mean amount in EUR), ``amount_vs_card_mean`` (``log1p(amount) -
  log1p(mean)``, 0 without history), ``card_velocity_1h`` / ``card_velocity_24h`` (events of
  the card in the hour / day before), ``device_changed`` (1 when the device differs from the
  card's previous one).
- one-hot ``merchant_category=*``, ``country=*``, ``channel=*`` (each with ``other``).
- ``merchant_hash_0..7``: a signed feature-hashing embedding of ``merchant_id`` (two hashes,
  +1/-1 each), so that merchants unseen in training still get a vector.

The per-card state is bounded (an LRU of ``capacity`` cards, each remembering its last
``RECENT_TIMESTAMPS`` event times). Rows flagged ``duplicate`` and rows whose ``card_id`` was
imputed are scored from the state but do not update it. ``build`` returns the state it used
so that the stage can log it.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from riskpipe import schema
from riskpipe.replay import ReplayState
from riskpipe.schema import RowError

MERCHANT_HASH_DIM = 8
RECENT_TIMESTAMPS = 64
DEFAULT_CARD_CAPACITY = 100_000
_HOUR_S = 3600.0
_DAY_S = 86400.0

NUMERIC_FEATURES: tuple[str, ...] = (
    "log_amount_eur",
    "hour_sin",
    "hour_cos",
    "log_card_age_days",
    "ip_risk",
    "card_txn_count_log",
    "card_mean_amount_log",
    "amount_vs_card_mean",
    "card_velocity_1h",
    "card_velocity_24h",
    "device_changed",
)
_ONE_HOT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("merchant_category", schema.MERCHANT_CATEGORIES + (schema.OTHER,)),
    ("country", schema.COUNTRIES + (schema.OTHER,)),
    ("channel", schema.CHANNELS + (schema.OTHER,)),
)
FEATURE_NAMES: tuple[str, ...] = (
    NUMERIC_FEATURES
    + tuple(f"{name}={value}" for name, values in _ONE_HOT for value in values)
    + tuple(f"merchant_hash_{i}" for i in range(MERCHANT_HASH_DIM))
)
N_FEATURES = len(FEATURE_NAMES)
# Columns that take only the values 0/1 (their drift baseline uses two bins).
BINARY_FEATURES: frozenset[str] = frozenset(
    ["device_changed"] + [f"{name}={value}" for name, values in _ONE_HOT for value in values]
)

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_REQUIRED = (
    "card_id",
    "amount_eur",
    "merchant_id",
    "merchant_category",
    "country",
    "channel",
    "device_id",
    "ts",
    "card_age_days",
    "ip_risk",
)
# card_id given to rows whose card is unknown: such rows get no history.
_NO_CARD = schema.IMPUTE_DEFAULTS["card_id"]


@lru_cache(maxsize=65_536)
def merchant_embedding(merchant_id: str) -> tuple[float, ...]:
    """Signed feature hashing of a merchant id into ``MERCHANT_HASH_DIM`` values."""
    digest = hashlib.blake2b(merchant_id.encode("utf-8"), digest_size=8).digest()
    vector = [0.0] * MERCHANT_HASH_DIM
    for k in range(2):
        word = int.from_bytes(digest[4 * k : 4 * k + 4], "little")
        sign = 1.0 if word & 1 else -1.0
        vector[(word >> 1) % MERCHANT_HASH_DIM] += sign
    return tuple(vector)


@dataclass
class CardState:
    """What the stage remembers about one card."""

    count: int = 0
    mean_amount_eur: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_TIMESTAMPS))
    last_device: str = ""

    def velocity(self, ts: float, window_s: float) -> int:
        """Events of this card in ``[ts - window_s, ts)``."""
        return sum(1 for t in self.recent if ts - window_s <= t < ts)

    def update(self, amount_eur: float, ts: float, device: str) -> None:
        """Add one event to the history."""
        self.count += 1
        self.mean_amount_eur += (amount_eur - self.mean_amount_eur) / self.count
        self.recent.append(ts)
        self.last_device = device


def _field(row: dict[str, Any], index: int, name: str) -> Any:
    try:
        return row[name]
    except KeyError:
        raise RowError(index, name, "missing from the processed row") from None


def _number(row: dict[str, Any], index: int, name: str) -> float:
    value = _field(row, index, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowError(index, name, f"must be a finite number, got {value!r}")
    return float(value)


def _logged_card(state: dict[str, Any]) -> tuple[CardState, int, int]:
    """A card state and its velocities as a replay carries them (``riskpipe.replay``)."""
    card = CardState(
        count=int(state["txn_count"]),
        mean_amount_eur=float(state["mean_amount_eur"]),
        last_device=str(state["last_device_id"]),
    )
    return card, int(state["velocity_1h"]), int(state["velocity_24h"])


class FeatureBuilder:
    """The features stage with its per-card state.

    Args:
        capacity: how many cards the state remembers (least recently seen dropped first).
    """

    def __init__(self, capacity: int = DEFAULT_CARD_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._cards: OrderedDict[str, CardState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cards)

    def _card(self, card_id: str) -> CardState:
        state = self._cards.get(card_id)
        if state is None:
            state = CardState()
            self._cards[card_id] = state
            if len(self._cards) > self.capacity:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(card_id)
        return state

    def build(
        self, rows: Sequence[dict[str, Any]], replay: ReplayState | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Build the feature matrix of one request and update the per-card state.

        Rows are taken in order, so a card seen twice in one request sees its first event in
        the history of the second.

        Args:
            rows: processed rows (``riskpipe.preprocess`` output).
            replay: for a replay (``riskpipe.replay``): every row is scored with the card
                state logged for it, and the live state is left as it is.

        Returns:
            ``(features, card_state)``: a float32 array ``[len(rows), N_FEATURES]`` and the
            state each row was scored with, as columns (``card_id``, ``txn_count``,
            ``mean_amount_eur``, ``velocity_1h``, ``velocity_24h``, ``last_device_id``,
            ``updated``).

        Raises:
            RowError: a processed row lacks a field or carries a non-number where a number
                belongs. The state is unchanged then.
            ReplayError: the replay state does not fit the request.
        """
        for index, row in enumerate(rows):
            for name in _REQUIRED:
                _field(row, index, name)
        logged = None if replay is None else replay.card_rows(len(rows))
        n = len(rows)
        out = np.zeros((n, N_FEATURES), dtype=np.float32)
        used: dict[str, list[Any]] = {
            "card_id": [],
            "txn_count": [],
            "mean_amount_eur": [],
            "velocity_1h": [],
            "velocity_24h": [],
            "last_device_id": [],
            "updated": [],
        }
        parsed = [self._numbers(row, index) for index, row in enumerate(rows)]
        for index, (row, (amount, ts, age, ip_risk)) in enumerate(zip(rows, parsed, strict=True)):
            card_id = str(row["card_id"])
            device = str(row["device_id"])
            has_card = card_id != _NO_CARD
            if logged is not None:
                card, v1h, v24h = _logged_card(logged[index])
                has_card = False  # scored from the logged state; nothing is updated
            else:
                card = self._card(card_id) if has_card else CardState()
                v1h, v24h = card.velocity(ts, _HOUR_S), card.velocity(ts, _DAY_S)
            x = out[index]
            x[0] = math.log1p(amount)
            hour = (ts % _DAY_S) / _HOUR_S
            x[1] = math.sin(2 * math.pi * hour / 24.0)
            x[2] = math.cos(2 * math.pi * hour / 24.0)
            x[3] = math.log1p(age)
            x[4] = ip_risk
            x[5] = math.log1p(card.count)
            if card.count:
                x[6] = math.log1p(card.mean_amount_eur)
                x[7] = x[0] - x[6]
                x[10] = float(device != card.last_device)
            x[8] = v1h
            x[9] = v24h
            for name, values in _ONE_HOT:
                value = row[name] if row[name] in values else schema.OTHER
                x[_INDEX[f"{name}={value}"]] = 1.0
            x[-MERCHANT_HASH_DIM:] = merchant_embedding(str(row["merchant_id"]))

            used["card_id"].append(card_id)
            used["txn_count"].append(card.count)
            used["mean_amount_eur"].append(card.mean_amount_eur)
            used["velocity_1h"].append(v1h)
            used["velocity_24h"].append(v24h)
            used["last_device_id"].append(card.last_device)
            update = has_card and not row.get("duplicate", False)
            used["updated"].append(update if logged is None else bool(logged[index]["updated"]))
            if update:
                card.update(amount, ts, device)
        state = {
            "card_id": np.array(used["card_id"], dtype=object),
            "txn_count": np.array(used["txn_count"], dtype=np.int64),
            "mean_amount_eur": np.array(used["mean_amount_eur"], dtype=np.float64),
            "velocity_1h": np.array(used["velocity_1h"], dtype=np.int64),
            "velocity_24h": np.array(used["velocity_24h"], dtype=np.int64),
            "last_device_id": np.array(used["last_device_id"], dtype=object),
            "updated": np.array(used["updated"], dtype=bool),
        }
        return out, state

    @staticmethod
    def _numbers(row: dict[str, Any], index: int) -> tuple[float, float, float, float]:
        amount = _number(row, index, "amount_eur")
        if amount < 0:
            raise RowError(index, "amount_eur", f"must be >= 0, got {amount!r}")
        age = _number(row, index, "card_age_days")
        if age < 0:
            raise RowError(index, "card_age_days", f"must be >= 0, got {age!r}")
        return amount, _number(row, index, "ts"), age, _number(row, index, "ip_risk")
