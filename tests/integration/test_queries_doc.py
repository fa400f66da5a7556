"""Every SQL block of docs/queries.md runs against data the real pipeline logged."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from running import RunningStack

from clients.feedback import report_action
from logging_backend.insights import notes
from logging_backend.stack import query
from logging_backend.stack import query as stack_query
from logging_backend.store import rollups
from training.generator import generate

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"
SQL_BLOCK = re.compile(r"^## (\d+)\. (.+?)$.*?^```sql\n(.*?)^```", re.S | re.M)
PARAM = re.compile(r"\{(\w+):")
TIMEOUT_S = 120.0


def doc_queries() -> list[tuple[int, str, str]]:
    found = [(int(n), title.strip(), sql) for n, title, sql in SQL_BLOCK.findall(DOC.read_text())]
    return found


def test_the_doc_has_one_query_per_arrow() -> None:
    # 1-10: the ten arrows; 11-13: their history from the hourly rollups (raw rows expired)
    assert [n for n, _, _ in doc_queries()] == list(range(1, 14))


def run(stack: RunningStack, sql: str, params: dict[str, str]) -> list[dict]:
    wanted = {name: params[name] for name in PARAM.findall(sql)}
    out = query.execute(stack.settings, sql, wanted, "JSONEachRow").decode("utf-8", "replace")
    return [json.loads(line) for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def params(stack: RunningStack) -> dict[str, str]:
    """One request with a clean, an incomplete and an unusual row; an action; a note."""
    events = [item.event for item in generate(3, seed=404)]
    for field in ("country", "channel", "device_id"):
        events[1].pop(field, None)
    events[2]["merchant_category"] = "spaceflight"
    request_id = f"doc-{uuid.uuid4().hex[:8]}"
    notes.add(
        stack_query.settings_query(stack.settings),
        notes.make_note("event", f"doc test {request_id}", "queries.md check", "-1h",
                        None, "test", "pytest"),
    )
    result = stack.score(events, request_id=request_id)
    other = next(a for a in ("approve", "decline") if a != result.decisions[0])
    report_action(stack.client, request_id, 0, other)
    deadline = time.monotonic() + TIMEOUT_S
    # Each stage process flushes on its own: wait until every table has all of the request.
    ready_sql = (
        "SELECT (SELECT count() FROM stagelog.actions WHERE request_id = {request_id:String}) "
        "+ (SELECT count() FROM stagelog.predictions WHERE request_id = {request_id:String}) "
        "+ (SELECT count() FROM stagelog.stage_events WHERE request_id = {request_id:String}) "
        "+ (SELECT uniqExact(stage) FROM stagelog.stage_tensors "
        "WHERE request_id = {request_id:String}) AS n"
    )
    expected = 1 + 3 * 4 + 6 + 6
    while run(stack, ready_sql, {"request_id": request_id})[0]["n"] < expected:
        assert time.monotonic() < deadline, "the request and its action did not arrive"
        time.sleep(0.2)
    now = datetime.now(timezone.utc)
    return {
        "request_id": request_id,
        "h_from": (now - timedelta(days=400)).strftime("%Y-%m-%d %H:00:00"),
        "h_to": (now + timedelta(hours=1)).strftime("%Y-%m-%d %H:00:00"),
    }


@pytest.mark.parametrize("number,title,sql", doc_queries(), ids=lambda v: str(v)[:20])
def test_doc_query_answers_with_real_data(stack, params, number, title, sql) -> None:
    def rolled_up(rows: list[dict]) -> bool:
        """The rollups hold this request (not only earlier traffic of the stack)."""
        if number == 13:
            return any(r["field"] == "country" and int(r["imputed"]) > 0 for r in rows)
        return bool(rows)

    found = run(stack, sql, params)
    deadline = time.monotonic() + 30.0
    # the rollups (the hourly ones, stage_latency_1m, request_index) are made in batches,
    # every 2 s in the test stack
    batched = number >= 11 or any(rollup.name in sql for rollup in rollups.ROLLUPS)
    while batched and not rolled_up(found) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = run(stack, sql, params)
    assert found, f"query {number} ({title}) returned no rows"
    if number == 1:
        assert len(found) == 3 and all(r["bytes"] > 0 for r in found)
    if number == 2:
        assert found[1]["imputed"], found[1]
        assert "merchant_category" in found[2]["mapped_to_other"]
    if number == 3:
        assert all(r["unchanged"] for r in found)
    if number == 4:
        assert {r["stage"] for r in found} >= {"preprocess", "features", "mlp", "aggregate"}
        assert all(r["trained_at"] for r in found if r["model_name"] in ("mlp", "forest"))
    if number == 6:
        assert len(found) == 3 * 4
    if number == 8:
        assert any(r["request_id"] == params["request_id"] for r in found)
    if number == 10:
        assert any(r["title"] == f"doc test {params['request_id']}" for r in found)
    if number == 11:
        assert all(int(r["rows"]) > 0 for r in found)
    if number == 13:
        assert any(r["field"] == "country" and int(r["imputed"]) > 0 for r in found)
