"""The spool's clock: writers flush on its ticks, the collector reads just after them.

A tick is a multiple of a period on the wall clock (``time.time()``), so every stage process of
a host flushes at the same instants whatever its start time, and a collector that polls a
moment after each tick (``offset_s``) finds all of that tick's segments in one poll: a row
waits for at most one flush period and one poll, not a flush period plus a whole poll period
of bad luck between the two phases.
"""

from __future__ import annotations

import time


def until_tick(period_s: float, offset_s: float = 0.0, now: float | None = None) -> float:
    """Seconds from ``now`` (``time.time()``) to the next ``k * period_s + offset_s``.

    A tick closer than 5 % of the period is skipped (a wait that ended a hair early must not
    flush twice), so the result lies in ``(0.05 * period_s, 1.05 * period_s]``.
    """
    now = time.time() if now is None else now
    delay = period_s - ((now - offset_s) % period_s)
    if delay <= 0.05 * period_s:
        delay += period_s
    return delay
