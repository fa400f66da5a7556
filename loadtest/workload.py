"""What the load test sends: batches of generator events, a share of them with a bad row.

Every row gets a fresh ``event_id`` (``<request id>-<row>``), so cycling the seeded pool never
looks like duplicate events to ``preprocess``. A bad row is one that ``preprocess`` must refuse
(INVALID_ARG naming the row and the field). Free of locust and gevent, so that plain processes
(tests, the loss check) can import it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from loadtest.ledger import DEFAULT_REQUEST_LOG
from training.generator import generate

# One unscorable row of each kind preprocess must refuse (riskpipe.preprocess).
BAD_ROWS: tuple[bytes, ...] = (
    b"this is not JSON",
    b'["a", "JSON", "array"]',
    b'{"amount": 12.5, "currency": "EUR"}',
    b'{"event_id": "%(id)s", "currency": "EUR"}',
    b'{"event_id": "%(id)s", "amount": -5}',
    b'{"event_id": "%(id)s", "amount": "lots"}',
)

_ID_PREFIX = b'{"event_id":'


@dataclass(frozen=True)
class LoadOptions:
    """The load test's own options, validated."""

    batch_size: int = 8
    bad_share: float = 0.02
    event_pool: int = 5000
    seed: int = 7
    request_log: Path = DEFAULT_REQUEST_LOG

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.bad_share <= 1.0:
            raise ValueError(f"--bad-share must be within [0, 1], got {self.bad_share}")
        if self.event_pool < 1:
            raise ValueError(f"--event-pool must be >= 1, got {self.event_pool}")

    @classmethod
    def from_parsed(cls, parsed: object | None) -> LoadOptions:
        """Read the options from locust's ``parsed_options`` (defaults when absent)."""
        defaults = cls()
        return cls(
            batch_size=int(getattr(parsed, "batch_size", defaults.batch_size)),
            bad_share=float(getattr(parsed, "bad_share", defaults.bad_share)),
            event_pool=int(getattr(parsed, "event_pool", defaults.event_pool)),
            seed=int(getattr(parsed, "seed", defaults.seed)),
            request_log=Path(getattr(parsed, "request_log", defaults.request_log)),
        )


class EventSource:
    """Batches of encoded raw events from the seeded generator, each row with a fresh id."""

    def __init__(self, pool_size: int, seed: int, bad_share: float) -> None:
        # The generator puts event_id first; keep what follows it, so that a fresh id is one
        # concatenation instead of a JSON round trip per row.
        self._tails: list[bytes] = []
        for item in generate(pool_size, seed):
            encoded = json.dumps(item.event, separators=(",", ":")).encode()
            old = json.dumps(item.event["event_id"]).encode()
            head = _ID_PREFIX + old
            if not encoded.startswith(head):
                raise ValueError("generator events must start with event_id")
            self._tails.append(encoded[len(head) :])
        self.pool_size, self.seed, self.bad_share = pool_size, seed, bad_share
        self._position = 0
        self._rng = random.Random(seed)

    def batch(self, request_id: str, size: int) -> tuple[list[bytes], bool]:
        """Return ``size`` encoded rows for ``request_id`` and whether one of them is bad."""
        rows: list[bytes] = []
        for row in range(size):
            tail = self._tails[self._position]
            self._position = (self._position + 1) % len(self._tails)
            rows.append(b'%s"%s-%d"%s' % (_ID_PREFIX, request_id.encode(), row, tail))
        bad = self._rng.random() < self.bad_share
        if bad:
            row = self._rng.randrange(size)
            template = BAD_ROWS[self._rng.randrange(len(BAD_ROWS))]
            rows[row] = template % {b"id": b"%s-%d" % (request_id.encode(), row)}
        return rows, bad


def raw_tensor(rows: Sequence[bytes]) -> grpcclient.InferInput:
    """The ``RAW`` input (BYTES, ``[rows, 1]``) of one request."""
    data = np.array(rows, dtype=np.object_).reshape(len(rows), 1)
    tensor = grpcclient.InferInput("RAW", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor
