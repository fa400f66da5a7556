"""The `feedback` model over gRPC: actions and labels land in ClickHouse, bad input is refused."""

from __future__ import annotations

import uuid

import pytest
from feedback_helpers import query_for, wait_for
from tritonclient.utils import InferenceServerException

from adapters.feedback import report_id
from clients import feedback as fb
from clients.score import generated_events


@pytest.fixture(scope="module")
def scored(stack):
    """One scored request of 4 rows with a known id."""
    rid = f"fb-{uuid.uuid4()}"
    stack.score(generated_events(4, seed=11), request_id=rid)
    return rid


def test_actions_and_labels_land_in_their_tables(stack, scored):
    rid = scored
    acks = fb.send_reports(
        stack.client,
        [
            fb.FeedbackReport(rid, 0, "action", "approve"),
            fb.FeedbackReport(rid, 1, "action", "block_card", {"executed": False, "by": "ops"}),
            fb.FeedbackReport(rid, 0, "label", "legit"),
            fb.FeedbackReport(rid, 1, "label", "card_fraud"),
        ],
    )
    assert acks == [
        report_id(rid, 0, "action", "approve"),
        report_id(rid, 1, "action", "block_card"),
        report_id(rid, 0, "label", "legit"),
        report_id(rid, 1, "label", "card_fraud"),
    ]
    # The same report again: same ACK, still one report.
    assert fb.report_label(stack.client, rid, 0, "legit") == acks[2]
    assert fb.report_action(stack.client, rid, 2, "review", executed=True) == report_id(
        rid, 2, "action", "review"
    )
    query = query_for(stack)
    labels = wait_for(
        query,
        "SELECT row, value, report_id FROM stagelog.labels WHERE request_id = {r:String} "
        "ORDER BY row, ts",
        {"r": rid},
        lambda rows: len(rows) >= 3,
    )
    assert [(r["row"], r["value"]) for r in labels] == [(0, "legit"), (0, "legit"),
                                                        (1, "card_fraud")]
    actions = wait_for(
        query,
        "SELECT row, action, executed, last_detail, reports FROM stagelog.actions_latest "
        "WHERE request_id = {r:String} ORDER BY row",
        {"r": rid},
        lambda rows: len(rows) >= 3,
    )
    assert [(r["row"], r["action"], r["executed"]) for r in actions] == [
        (0, "approve", 1), (1, "block_card", 0), (2, "review", 1)
    ]
    assert '"by": "ops"' in actions[1]["last_detail"]
    latest = query(
        "SELECT row, label, reports FROM stagelog.labels_latest WHERE request_id = {r:String} "
        "ORDER BY row",
        {"r": rid},
    )
    assert [(r["row"], r["label"], int(r["reports"])) for r in latest] == [
        (0, "legit", 1), (1, "card_fraud", 1)
    ]
    # Once the scored rows are in (each stage flushes on its own: they may land after the
    # reports), none of these reports is unmatched.
    assert wait_for(
        query,
        "SELECT count() AS n FROM stagelog.feedback_unmatched WHERE request_id = {r:String}",
        {"r": rid},
        lambda rows: rows == [{"n": 0}],
    ) == [{"n": 0}]


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (fb.FeedbackReport("{rid}", 0, "label", "fraud"),
         "row 1: field 'VALUE': 'fraud' is not one of legit, card_fraud, account_takeover"),
        (fb.FeedbackReport("{rid}", 0, "action", "refund"), "row 1: field 'VALUE': 'refund'"),
        (fb.FeedbackReport("{rid}", 0, "verdict", "legit"), "row 1: field 'KIND'"),
        (fb.FeedbackReport("{rid}", -3, "label", "legit"), "row 1: field 'ROW': must be >= 0"),
        (fb.FeedbackReport("", 0, "label", "legit"), "row 1: field 'REQUEST_ID': empty"),
        (fb.FeedbackReport("a b", 0, "label", "legit"), "row 1: field 'REQUEST_ID'"),
    ],
)
def test_bad_reports_are_refused_naming_row_and_field(stack, scored, report, message):
    bad = fb.FeedbackReport(report.request_id.replace("{rid}", scored), report.row, report.kind,
                            report.value)
    good = fb.FeedbackReport(scored, 3, "label", "account_takeover")
    with pytest.raises(InferenceServerException) as info:
        fb.send_reports(stack.client, [good, bad])
    assert "INVALID_ARG" in str(info.value.status())
    assert message in info.value.message()


def test_detail_must_be_a_json_object(stack, scored):
    import numpy as np
    import tritonclient.grpc as grpcclient

    def strings(name, value):
        t = grpcclient.InferInput(name, [1, 1], "BYTES")
        t.set_data_from_numpy(np.array([[value.encode()]], dtype=np.object_))
        return t

    row = grpcclient.InferInput("ROW", [1, 1], "INT32")
    row.set_data_from_numpy(np.array([[0]], dtype=np.int32))
    inputs = [strings("REQUEST_ID", scored), row, strings("KIND", "action"),
              strings("VALUE", "approve"), strings("DETAIL", "{not json")]
    with pytest.raises(InferenceServerException, match="row 0: field 'DETAIL': not valid JSON"):
        stack.client.infer("feedback", inputs)
    wrong_dtype = grpcclient.InferInput("ROW", [1, 1], "FP32")
    wrong_dtype.set_data_from_numpy(np.array([[0.0]], dtype=np.float32))
    with pytest.raises(InferenceServerException):
        stack.client.infer("feedback", [inputs[0], wrong_dtype, *inputs[2:4]])
    assert stack.alive()


def test_refused_batches_write_nothing_and_unknown_ids_are_listed(stack, scored):
    rid = scored
    with pytest.raises(InferenceServerException):
        fb.send_reports(stack.client, [fb.FeedbackReport(rid, 3, "label", "legit"),
                                       fb.FeedbackReport(rid, 3, "label", "nonsense")])
    ghost = f"never-scored-{uuid.uuid4()}"
    fb.report_label(stack.client, ghost, 0, "legit")
    query = query_for(stack)
    unmatched = wait_for(
        query,
        "SELECT request_id, kind, value FROM stagelog.feedback_unmatched "
        "WHERE request_id = {g:String}",
        {"g": ghost},
        lambda rows: len(rows) >= 1,
    )
    assert unmatched == [{"request_id": ghost, "kind": "label", "value": "legit"}]
    # The ghost report was sent after the refused batch and has landed: the refused one did not.
    assert query(
        "SELECT count() AS n FROM stagelog.labels WHERE request_id = {r:String} AND row = 3 "
        "AND value = 'legit'",
        {"r": rid},
    ) == [{"n": 0}]
