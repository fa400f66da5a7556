"""Which rows are production traffic: not replays, not the supervisor's stage probes.

Both kinds are stored like any request (a replay's arrows, the evidence that the health checks
ran) and left out of every production metric: the views of migrations 0070 and 0085, the
report, the shipped alert rules and the queries here all use the same condition.
"""

from __future__ import annotations

REPLAY_PREFIX = "replay-"  # `stagelog replay` (insights.replay)
PROBE_PREFIX = "stagelog-probe-"  # the supervisor's stage probes (stack.stages)

PRODUCTION = (
    f"NOT startsWith(request_id, '{REPLAY_PREFIX}') "
    f"AND NOT startsWith(request_id, '{PROBE_PREFIX}')"
)


def is_production(request_id: str) -> bool:
    """Whether ``request_id`` is production traffic (neither a replay nor a probe)."""
    return not request_id.startswith((REPLAY_PREFIX, PROBE_PREFIX))
