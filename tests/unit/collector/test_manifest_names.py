"""A batch manifest naming ../../x makes the collector touch nothing outside the spool."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from logging_backend.collector import shipper as sh
from logging_backend.spool import layout


class FakeClient:
    def __init__(self):
        self.rows = 0

    def insert_arrow(self, table, data, settings=None):
        self.rows += data.num_rows


def _events(rid: str) -> pa.Table:
    return pa.table({"request_id": [rid]})


@pytest.mark.parametrize(
    "hostile", ["../../x", "/abs/x", "..", "a/b.arrow", "0000000000000001000-h-1-00000000.arrow/.."]
)
def test_a_manifest_naming_a_path_outside_the_spool_touches_nothing_there(tmp_path, hostile):
    home = tmp_path / "home"
    spool = home / "spool"
    victim = home / "x"
    victim.parent.mkdir(parents=True)
    victim.write_text("not yours")
    good = layout.write_table_segment(
        spool, "stage_events", _events("r1"), name="0000000000000001000-h-1-00000000.arrow"
    )
    names = [good.name, hostile.replace("/abs", str(tmp_path / "abs"))]
    (spool / "stage_events" / ".batch-deadbeef.json").write_text(
        json.dumps({"token": "t", "segments": names})
    )
    client = FakeClient()
    shipper = sh.Shipper(client, spool)
    shipper.enforce_budget()
    shipper.ship_all()
    assert victim.read_text() == "not yours"
    assert client.rows == 1  # the good segment still ships, as a batch of its own
    assert not list((spool / "stage_events").glob(".batch-*.json"))
