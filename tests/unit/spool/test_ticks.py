"""The spool's clock: flushes on multiples of the period, the collector's poll just after."""

from __future__ import annotations

import pytest

from logging_backend.spool.ticks import until_tick


@pytest.mark.parametrize(
    ("now", "period", "offset", "expected"),
    [
        (100.0, 1.0, 0.0, 1.0),  # on a tick: the next one, not this one again
        (100.2, 1.0, 0.0, 0.8),
        (100.99, 1.0, 0.0, 0.01 + 1.0),  # closer than 5 %: that tick is skipped
        (100.2, 1.0, 0.25, 0.05 + 1.0),  # 0.05 before the poll's tick: skipped too
        (100.1, 1.0, 0.25, 0.15),
        (100.3, 2.0, 0.25, 1.95),
    ],
)
def test_the_wait_ends_on_the_next_tick(now, period, offset, expected) -> None:
    assert until_tick(period, offset, now=now) == pytest.approx(expected)


def test_every_process_gets_the_same_instants() -> None:
    """Two callers at different moments of one period wake at the same wall-clock time."""
    a, b = 1_000.13, 1_000.71
    assert a + until_tick(0.5, now=a) == pytest.approx(b + until_tick(0.5, now=b) - 0.5)
    assert (a + until_tick(1.0, now=a)) % 1.0 == pytest.approx(0.0, abs=1e-9)


def test_the_wait_stays_within_a_period_and_a_twentieth() -> None:
    for i in range(1000):
        now = 5_000 + i * 0.0137
        delay = until_tick(1.0, 0.25, now=now)
        assert 0.05 < delay <= 1.05 + 1e-9
