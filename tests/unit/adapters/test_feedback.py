import json
from datetime import datetime, timezone

import pytest

from adapters import feedback
from adapters.feedback import FeedbackError, report_id, table_rows, validate_batch

RID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_valid_action_and_label_rows_are_accepted():
    reports = validate_batch(
        [RID.encode(), RID], [0, 3], [b"action", "label"], [b"decline", "card_fraud"],
        [b'{"executed": false, "actor": "ops"}', b""],
    )
    assert [(r.kind, r.value, r.row) for r in reports] == [
        ("action", "decline", 0),
        ("label", "card_fraud", 3),
    ]
    assert reports[0].executed is False
    assert reports[1].executed is True


@pytest.mark.parametrize(
    ("rid", "row", "kind", "value", "detail", "field", "fragment"),
    [
        ("", 0, "action", "approve", None, "REQUEST_ID", "empty"),
        ("a b", 0, "action", "approve", None, "REQUEST_ID", "whitespace"),
        ("x" * 129, 0, "action", "approve", None, "REQUEST_ID", "longer"),
        (b"\xff\xfe", 0, "action", "approve", None, "REQUEST_ID", "UTF-8"),
        (RID, -1, "action", "approve", None, "ROW", ">= 0"),
        (RID, 1.5, "action", "approve", None, "ROW", "not an integer"),
        (RID, 0, "refund", "approve", None, "KIND", "'refund' is not one of action, label"),
        (RID, 0, "action", "approved", None, "VALUE", "'approved' is not one of approve"),
        (RID, 0, "label", "fraud", None, "VALUE", "legit, card_fraud, account_takeover"),
        (RID, 0, "label", "approve", None, "VALUE", "'approve' is not one of legit"),
        (RID, 0, "action", "approve", "{not json", "DETAIL", "not valid JSON"),
        (RID, 0, "action", "approve", "[1, 2]", "DETAIL", "JSON object"),
        (RID, 0, "action", "approve", '{"executed": "yes"}', "DETAIL", "true or false"),
    ],
)
def test_bad_rows_name_the_row_and_field(rid, row, kind, value, detail, field, fragment):
    good = (RID, 0, "action", "approve", None)
    with pytest.raises(FeedbackError) as info:
        validate_batch(
            [good[0], rid], [good[1], row], [good[2], kind], [good[3], value], [good[4], detail]
        )
    assert info.value.row == 1
    assert info.value.field == field
    assert str(info.value).startswith(f"row 1: field '{field}': ")
    assert fragment in str(info.value)


def test_empty_and_ragged_batches_are_rejected():
    with pytest.raises(FeedbackError, match="empty batch"):
        validate_batch([], [], [], [])
    with pytest.raises(FeedbackError, match="field 'VALUE': has 1 rows but REQUEST_ID has 2"):
        validate_batch([RID, RID], [0, 1], ["label", "label"], ["legit"])


def test_report_id_is_deterministic_and_distinguishes_reports():
    a = report_id(RID, 0, "label", "legit")
    assert a == report_id(RID, 0, "label", "legit")
    others = [
        report_id(RID, 1, "label", "legit"),
        report_id(RID, 0, "label", "card_fraud"),
        report_id(RID, 0, "action", "approve"),
        report_id("other", 0, "label", "legit"),
    ]
    assert len({a, *others}) == 5


def test_table_rows_split_actions_and_labels():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    reports = validate_batch(
        [RID, RID, RID], [0, 0, 1], ["action", "label", "action"],
        ["review", "legit", "approve"], ['{"executed": false}', "", ""],
    )
    rows = table_rows(reports, now=now)
    assert [r["value"] for r in rows["actions"]] == ["review", "approve"]
    assert json.loads(rows["actions"][0]["detail"]) == {"executed": False}
    assert rows["labels"] == [
        {"report_id": report_id(RID, 0, "label", "legit"), "request_id": RID, "row": 0, "ts": now,
         "detail": "", "value": "legit"}
    ]


def test_documented_action_set_contains_every_decision():
    from riskpipe.schema import DECISIONS

    assert set(DECISIONS) <= set(feedback.ACTIONS)


def test_int_column_checks_dtype_and_shape():
    import numpy as np

    assert feedback.int_column("ROW", np.array([[0], [7]], dtype=np.int32)) == [0, 7]
    with pytest.raises(FeedbackError, match="row 0: field 'ROW': input missing"):
        feedback.int_column("ROW", None)
    with pytest.raises(FeedbackError, match="TYPE_INT32, got float32"):
        feedback.int_column("ROW", np.array([[0.0]], dtype=np.float32))
    with pytest.raises(FeedbackError, match=r"shape \[rows, 1\], got \[2\]"):
        feedback.int_column("ROW", np.array([0, 1], dtype=np.int32))


@pytest.mark.parametrize("logging", ["on", "off"])
def test_reports_go_through_the_stage_log_even_with_logging_off(tmp_path, monkeypatch, logging):
    from logging_backend.capture.stage import StageLog
    from logging_backend.spool import layout

    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path))
    monkeypatch.setenv("STAGELOG_LOGGING", logging)
    args = {"model_name": "feedback", "model_version": "1", "model_config": "{}"}
    log = StageLog.from_triton_args(args, keep_data=True)
    reports = validate_batch([RID, RID, RID], [0, 0, 1], ["action", "label", "label"],
                             ["approve", "legit", "card_fraud"])
    with log.request("call-1", rows=3) as rec:
        for table, rows in table_rows(reports).items():
            rec.table_rows(table, rows)
    log.close()
    spooled: dict[str, list] = {}  # table -> its parts, whatever the segment format
    for ref in layout.list_segments(tmp_path / "spool"):
        for table, data in layout.read_segment(ref.path).items():
            spooled.setdefault(table, []).append(data)
    events = spooled.get("stage_events", [])
    assert bool(events) == (logging == "on")  # instrumentation only when logging is on
    labels, actions = spooled["labels"], spooled["actions"]
    assert sum(t.num_rows for t in labels) == 2 and sum(t.num_rows for t in actions) == 1
    assert actions[0].column_names == ["ts", "request_id", "row", "value", "detail", "report_id"]
    assert actions[0].to_pylist()[0]["report_id"] == report_id(RID, 0, "action", "approve")
    assert not list((tmp_path / "spool").rglob("*.tmp"))
