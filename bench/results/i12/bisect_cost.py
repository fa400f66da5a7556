"""Inserts sent for one refused segment among N (the shipper's bisection, a fake store).

Run: ``.venv/bin/python bench/results/i12/bisect_cost.py``; prints N, the refused segment's
position, inserts sent (refused + accepted) and splits.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from clickhouse_connect.driver.exceptions import DatabaseError  # noqa: E402

from logging_backend.collector import shipper as sh  # noqa: E402
from tests.unit.collector.test_shipper import events, v1  # noqa: E402


class Store:
    """Refuses any insert holding request id ``bad``."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.sent = 0

    def insert_arrow(self, table, data, settings=None):
        """Count the insert; refuse it when it holds the bad id."""
        self.sent += 1
        if self.bad in data.column("request_id").to_pylist():
            raise DatabaseError("Code: 6. DB::Exception: Cannot parse string (CANNOT_PARSE_TEXT)")


for n, bad in ((600, 300), (600, 0), (600, 599), (5000, 2500)):
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp)
        for i in range(n):
            v1(spool, "stage_events", events([f"r{i}"]), i)
        store = Store(f"r{bad}")
        ship = sh.Shipper(store, spool)
        ship.ship_all()
        print(f"segments {n} refused_at {bad} inserts_sent {store.sent} splits {ship.stats.splits}")
