"""Seeded synthetic card-payment events with known labels (docs/workload.md describes it too).

Generative process (all draws from one ``numpy.random.default_rng(seed)``):

1. **Cards.** ``max(20, n // 10)`` cards. Each has a home country (DE .30, FR .20, GB .14,
   NL .12, ES .12, IT .12) and its currency, an age in days (log-normal around 540), a
   spending scale (log-normal around 35 EUR) and one usual device. Home countries, ages and
   scales are drawn one per equal-probability stratum (in random order), so that a small set
   of cards still follows the distribution.
2. **Incidents.** Until ``n`` events exist, draw an incident's class with priors legit .948,
   card_fraud .027, account_takeover .025. Card fraud comes in bursts of ``1 + Poisson(1.5)``
   events minutes apart, account takeover in bursts of ``1 + Poisson(0.5)``, so the event mix
   is about 90 % legit, 6.4 % card_fraud, 3.6 % account_takeover.
3. **Event fields by class.**

   ========== ============================ ============================ ==========================
   field      legit                        card_fraud                   account_takeover
   ========== ============================ ============================ ==========================
   amount     card scale x LogN(0, .7)     LogN(ln 180, .8), any card   card scale x LogN(ln 6, .6)
   category   everyday mix (grocery...)    electronics, digital goods,  travel, online retail,
                                           jewelry, gaming, online      electronics, digital goods
   merchant   any of 50 per category       60 %: 6 "risky" ones         any
   country    home (96 %)                  US, BR, NG, RU, GB           home or abroad (50/50)
   channel    pos/contactless/online/atm   online (85 %)                online (70 %) or atm
   hour (UTC) N(14, 3.5)                   60 % N(3, 2.5), 40 % uniform uniform
   ip_risk    Beta(1.2, 14)                Beta(4, 4)                   Beta(3, 5)
   device     the card's (97 %)            a new one per burst          a new one per burst
   ========== ============================ ============================ ==========================

   Every card gets events at the same rate whatever ``n`` is: incidents are spread over
   ``(n / cards) / CARD_EVENTS_PER_DAY`` days from ``start`` (20 days at 10 events per card and
   0.5 per day), so per-card history features such as ``card_velocity_24h`` have one
   distribution for a 300-event phase and for the 30,000 training events (they did not while
   the span was ``max(1, n / 1500)`` days: a 300-event phase packed a card's ten events into one
   day). Follow-ups of a burst come
   ``Exp(4 min)`` (card fraud) or ``Exp(10 min)`` (takeover) apart. Events are sorted by
   time and numbered ``e<seed>-<index>``. Amounts are in the event's currency (the card's,
   or 50 % the local one abroad), at the fixed rates of ``riskpipe.schema.EUR_PER_UNIT``.
4. **Drift** (``drift`` in [0, 1]): legit amounts times ``exp(0.4 drift)``; every
   ``ip_risk`` plus ``0.25 drift x Beta(2, 2)`` (capped at 1); with probability
   ``0.5 drift`` a legit event's category becomes digital_goods or online_retail and its
   channel online.
5. **Dirty data** (``dirty`` in [0, 1]): each event, with probability ``dirty``, gets one
   defect, chosen uniformly: *missing* (1-2 optional fields removed), *duplicate* (the same
   payload re-sent a few events later), *unknown category* (merchant_category ``crypto``,
   country ``ZZ``, channel ``kiosk`` or currency ``XYZ``), *outlier* (amount x 50-200,
   card_age_days 99999, or ip_risk 5.0). Every event stays scorable (``event_id`` and a
   finite ``amount >= 0`` are always there). The output is cut to exactly ``n`` events.

Usage::

    python -m training.generator --n 1000 --seed 7 --drift 0.0 --dirty 0.05 > events.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from riskpipe import schema

DEFAULT_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
INCIDENT_PRIORS = {"legit": 0.948, "card_fraud": 0.027, "account_takeover": 0.025}
HOME_COUNTRIES = {"DE": 0.30, "FR": 0.20, "GB": 0.14, "NL": 0.12, "ES": 0.12, "IT": 0.12}
COUNTRY_CURRENCY = {
    "DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR", "IT": "EUR",
    "GB": "GBP", "US": "USD", "BR": "BRL", "NG": "NGN", "RU": "RUB",
}  # fmt: skip
LEGIT_CATEGORIES = {
    "grocery": 0.30, "restaurant": 0.20, "fuel": 0.14, "online_retail": 0.16, "travel": 0.05,
    "electronics": 0.07, "digital_goods": 0.05, "jewelry": 0.01, "gaming": 0.02,
}  # fmt: skip
LEGIT_CHANNELS = {"pos": 0.40, "contactless": 0.30, "online": 0.25, "atm": 0.05}
FRAUD_CATEGORIES = {
    "electronics": 0.30, "digital_goods": 0.25, "jewelry": 0.15, "gaming": 0.15,
    "online_retail": 0.15,
}  # fmt: skip
FRAUD_COUNTRIES = {"US": 0.30, "BR": 0.20, "NG": 0.20, "RU": 0.15, "GB": 0.15}
ATO_CATEGORIES = {"travel": 0.30, "online_retail": 0.30, "electronics": 0.20, "digital_goods": 0.2}
# Incidents per card and simulated day; sets the time span of a generated set (see above).
CARD_EVENTS_PER_DAY = 0.5
MERCHANTS_PER_CATEGORY = 50
RISKY_MERCHANTS = 6
DEFECTS = ("missing", "duplicate", "unknown_category", "outlier")
OPTIONAL_FIELDS = tuple(f for f in schema.RAW_FIELDS if f not in schema.REQUIRED_FIELDS)


@dataclass(frozen=True)
class LabelledEvent:
    """One raw event and its true class."""

    event: dict[str, Any]
    label: str


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _stratified_normal(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` standard-normal draws, one from each of ``count`` equal-probability strata.

    Card attributes are drawn once per card, so a small set (30 cards for a 300-event phase)
    drawn independently lands its ages and spending scales far from the training mix by
    chance alone (PSI of ``log_card_age_days`` 0.3-0.9 on calm traffic); one draw per stratum,
    in random order, keeps every set close to the distribution.
    """
    u = (rng.permutation(count) + rng.random(count)) / count
    inv_cdf = NormalDist().inv_cdf
    return np.array([inv_cdf(min(max(p, 1e-12), 1 - 1e-12)) for p in u.tolist()])


def _stratified_pick(rng: np.random.Generator, weights: dict[str, float], count: int) -> list[str]:
    """``count`` draws from ``weights``, one per equal-probability stratum, in random order."""
    keys = list(weights)
    cumulative = np.cumsum([weights[k] for k in keys])
    u = (rng.permutation(count) + rng.random(count)) / count * cumulative[-1]
    return [keys[min(int(i), len(keys) - 1)] for i in np.searchsorted(cumulative, u, side="right")]


class _Cards:
    def __init__(self, rng: np.random.Generator, count: int, seed: int) -> None:
        self.ids = [f"c{seed}-{i:05d}" for i in range(count)]
        self.home = _stratified_pick(rng, HOME_COUNTRIES, count)
        self.age = np.round(np.exp(np.log(540) + 0.9 * _stratified_normal(rng, count))).astype(int)
        self.scale = np.exp(np.log(35) + 0.6 * _stratified_normal(rng, count))
        self.device = [f"d{seed}-{i:05d}" for i in range(count)]


def _hour(rng: np.random.Generator, label: str) -> float:
    if label == "legit":
        return float(rng.normal(14, 3.5)) % 24
    if label == "card_fraud" and rng.random() < 0.6:
        return float(rng.normal(3, 2.5)) % 24
    return float(rng.uniform(0, 24))


def _event(
    rng: np.random.Generator, cards: _Cards, card: int, label: str, drift: float, burst: dict
) -> dict[str, Any]:
    home = cards.home[card]
    if label == "legit":
        amount_eur = cards.scale[card] * rng.lognormal(0, 0.7) * np.exp(0.4 * drift)
        category = _pick(rng, LEGIT_CATEGORIES)
        channel = _pick(rng, LEGIT_CHANNELS)
        if rng.random() < 0.5 * drift:
            category = "digital_goods" if rng.random() < 0.5 else "online_retail"
            channel = "online"
        merchant = int(rng.integers(MERCHANTS_PER_CATEGORY))
        country = home if rng.random() < 0.96 else _pick(rng, {**HOME_COUNTRIES, "US": 0.2})
        ip_risk = rng.beta(1.2, 14)
        device = cards.device[card] if rng.random() < 0.97 else f"d-new-{rng.integers(1e9)}"
    elif label == "card_fraud":
        amount_eur = rng.lognormal(np.log(180), 0.8)
        category = _pick(rng, FRAUD_CATEGORIES)
        channel = "online" if rng.random() < 0.85 else _pick(rng, {"contactless": 1, "pos": 1})
        risky = rng.random() < 0.6
        merchant = int(rng.integers(RISKY_MERCHANTS if risky else MERCHANTS_PER_CATEGORY))
        country = burst.setdefault("country", _pick(rng, FRAUD_COUNTRIES))
        ip_risk = rng.beta(4, 4)
        device = burst.setdefault("device", f"d-new-{rng.integers(1e9)}")
    else:
        amount_eur = cards.scale[card] * rng.lognormal(np.log(6), 0.6)
        category = _pick(rng, ATO_CATEGORIES)
        channel = "online" if rng.random() < 0.7 else "atm"
        merchant = int(rng.integers(MERCHANTS_PER_CATEGORY))
        country = burst.setdefault(
            "country", home if rng.random() < 0.5 else _pick(rng, FRAUD_COUNTRIES)
        )
        ip_risk = rng.beta(3, 5)
        device = burst.setdefault("device", f"d-new-{rng.integers(1e9)}")
    ip_risk = min(1.0, ip_risk + 0.25 * drift * rng.beta(2, 2)) if drift else ip_risk
    currency = COUNTRY_CURRENCY[home]
    if country != home and rng.random() < 0.5:
        currency = COUNTRY_CURRENCY[country]
    return {
        "card_id": cards.ids[card],
        "amount": round(float(amount_eur) / schema.EUR_PER_UNIT[currency], 2),
        "currency": currency,
        "merchant_id": f"m-{category}-{merchant:03d}",
        "merchant_category": category,
        "country": country,
        "channel": channel,
        "device_id": device,
        "card_age_days": int(cards.age[card]),
        "ip_risk": round(float(ip_risk), 4),
    }


def _dirty(rng: np.random.Generator, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    defect = DEFECTS[int(rng.integers(len(DEFECTS)))]
    event = dict(event)
    if defect == "missing":
        k = int(rng.integers(1, 3))
        for name in rng.choice(OPTIONAL_FIELDS, size=k, replace=False):
            event.pop(str(name), None)
    elif defect == "unknown_category":
        name, value = [
            ("merchant_category", "crypto"), ("country", "ZZ"), ("channel", "kiosk"),
            ("currency", "XYZ"),
        ][int(rng.integers(4))]  # fmt: skip
        event[name] = value
    elif defect == "outlier":
        which = int(rng.integers(3))
        if which == 0:
            event["amount"] = round(event["amount"] * float(rng.uniform(50, 200)), 2)
        elif which == 1:
            event["card_age_days"] = 99999
        else:
            event["ip_risk"] = 5.0
    return defect, event


def generate(
    n: int,
    seed: int,
    drift: float = 0.0,
    dirty: float = 0.0,
    start: datetime = DEFAULT_START,
) -> list[LabelledEvent]:
    """Generate ``n`` labelled raw events (see the module docstring for the process).

    Args:
        n: number of events (>= 0).
        seed: random seed; the same arguments give the same events.
        drift: shift strength in [0, 1] (amount, ip_risk, category mix).
        dirty: fraction of events in [0, 1] that get a data defect.
        start: time of the first day (UTC).

    Returns:
        Events sorted by timestamp (duplicates excepted), each with its label.

    Raises:
        ValueError: an argument is out of range.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= drift <= 1.0 or not 0.0 <= dirty <= 1.0:
        raise ValueError(f"drift and dirty must be in [0, 1], got {drift}, {dirty}")
    rng = np.random.default_rng(seed)
    cards = _Cards(rng, max(20, n // 10), seed)
    span_s = max(1.0, n / len(cards.ids) / CARD_EVENTS_PER_DAY) * 86400.0
    timed: list[tuple[float, dict[str, Any], str]] = []
    while len(timed) < n:
        label = _pick(rng, INCIDENT_PRIORS)
        card = int(rng.integers(len(cards.ids)))
        day = float(np.floor(rng.uniform(0, span_s / 86400.0)))
        t = day * 86400.0 + _hour(rng, label) * 3600.0 + float(rng.uniform(0, 60))
        size, gap_s = 1, 0.0
        if label == "card_fraud":
            size, gap_s = 1 + int(rng.poisson(1.5)), 240.0
        elif label == "account_takeover":
            size, gap_s = 1 + int(rng.poisson(0.5)), 600.0
        burst: dict[str, str] = {}
        for _ in range(size):
            timed.append((t, _event(rng, cards, card, label, drift, burst), label))
            t += float(rng.exponential(gap_s)) if gap_s else 0.0
    timed = timed[:n]
    timed.sort(key=lambda item: item[0])
    out: list[LabelledEvent] = []
    for index, (t, fields, label) in enumerate(timed):
        moment = start + timedelta(seconds=t)
        event = {"event_id": f"e{seed}-{index:07d}", **fields, "timestamp": _iso(moment)}
        out.append(LabelledEvent(event, label))
    if dirty:
        result: list[LabelledEvent] = []
        pending: list[tuple[int, LabelledEvent]] = []
        for index, item in enumerate(out):
            result.append(item)
            if rng.random() < dirty:
                defect, event = _dirty(rng, item.event)
                if defect == "duplicate":
                    pending.append((index + int(rng.integers(1, 20)), item))
                else:
                    result[-1] = LabelledEvent(event, item.label)
            while pending and pending[0][0] <= index:
                result.append(pending.pop(0)[1])
        out = (result + [item for _, item in pending])[:n]
    return out


def to_jsonl(events: list[LabelledEvent]) -> str:
    """The events as JSON lines (without labels), the format clients send."""
    return "".join(json.dumps(item.event, separators=(",", ":")) + "\n" for item in events)


def main(argv: list[str] | None = None) -> int:
    """Command line: write events as JSON lines to stdout (labels optionally to a file)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.generator", description="Synthetic card-payment events."
    )
    parser.add_argument("--n", type=int, default=1000, help="number of events")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--drift", type=float, default=0.0, help="drift strength in [0, 1]")
    parser.add_argument("--dirty", type=float, default=0.0, help="fraction of dirty events")
    parser.add_argument("--start", default=_iso(DEFAULT_START), help="first day (ISO 8601)")
    parser.add_argument("--labels", type=Path, help="also write {event_id, label} lines here")
    args = parser.parse_args(argv)
    try:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        events = generate(args.n, args.seed, args.drift, args.dirty, start)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(to_jsonl(events))
    if args.labels:
        args.labels.write_text(
            "".join(
                json.dumps({"event_id": e.event["event_id"], "label": e.label}) + "\n"
                for e in events
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
