"""The scoring client's pure parts: encoding, batching, request ids, the summary."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from clients import score


def test_dicts_are_sent_as_compact_json_and_strings_as_given() -> None:
    assert score.encode({"event_id": "e1", "amount": 3.5}) == b'{"event_id":"e1","amount":3.5}'
    assert score.encode("{not json") == b"{not json"
    assert score.encode(b"\xff") == b"\xff"


def test_raw_input_is_a_bytes_column_with_one_row_per_event() -> None:
    tensor = score.raw_input([{"event_id": "a"}, "b", b"c"])
    assert tensor.name() == "RAW"
    assert tensor.datatype() == "BYTES"
    assert tensor.shape() == [3, 1]


def test_batches_split_without_losing_events() -> None:
    chunks = list(score.batches(range(7), 3))
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match="batch size"):
        list(score.batches([1], 0))


def test_request_ids_prefix_uuid_or_none() -> None:
    prefixed = score.request_ids("run7")
    assert [next(prefixed) for _ in range(3)] == ["run7-0", "run7-1", "run7-2"]
    generated = score.request_ids(None)
    first, second = next(generated), next(generated)
    assert uuid.UUID(first).version == 4 and first != second
    assert next(score.request_ids(None, generate=False)) is None


def test_summary_counts_decisions_classes_and_refusals() -> None:
    summary = score.Summary()
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]], dtype=np.float32)
    summary.add(score.ScoreResult("r1", probs, ["approve", "decline"], 2.0))
    summary.add(score.ScoreResult("r2", probs[:1], ["approve"], 4.0))
    summary.add_error(5, InferenceServerException("row 2: field 'amount'", "INVALID_ARGUMENT"))
    assert summary.rows == 3 and summary.requests == 3
    assert summary.decisions == {"approve": 2, "decline": 1}
    assert summary.classes == {"legit": 2, "card_fraud": 1}
    assert summary.failed_rows == 5 and "field 'amount'" in summary.errors[0]
    assert summary.percentile(50) == pytest.approx(3.0)


def test_jsonl_lines_are_kept_verbatim(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event_id": "a", "amount": 1}) + "\n\n{bad\n")
    assert score.load_jsonl(path) == ['{"event_id": "a", "amount": 1}', "{bad"]


def test_event_id_is_found_in_dicts_and_json_lines_only() -> None:
    assert score._event_id({"event_id": "a"}) == "a"
    assert score._event_id('{"event_id": 7, "amount": 1}') == "7"
    assert score._event_id(b"{not json") is None
    assert score._event_id("[1, 2]") is None
