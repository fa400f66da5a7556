"""Load test pieces that need no server: workload, ledger, loss check, locust user helpers.

`loadtest.triton_user` and `loadtest.pipeline` import locust, which monkey-patches the standard
library for gevent; they are exercised in a child process so that this test run stays unpatched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loadtest import losscheck
from loadtest.ledger import LedgerError, RequestLog, Sent, read_ledger, request_log_path
from loadtest.workload import BAD_ROWS, EventSource, LoadOptions, raw_tensor
from logging_backend.config import REPO_ROOT
from riskpipe.preprocess import Preprocessor
from riskpipe.schema import RowError

# ----------------------------------------------------------------------------- workload


def test_every_row_gets_a_fresh_event_id_and_good_rows_preprocess() -> None:
    source = EventSource(pool_size=5, seed=3, bad_share=0.0)
    seen: set[str] = set()
    for n in range(4):  # 4 x 4 rows cycles the 5-event pool
        rows, bad = source.batch(f"req-{n}", 4)
        assert not bad
        events = [json.loads(row) for row in rows]
        assert [e["event_id"] for e in events] == [f"req-{n}-{i}" for i in range(4)]
        seen.update(e["event_id"] for e in events)
        processed = Preprocessor().process([row.decode() for row in rows])
        assert not any(row.get("duplicate") for row in processed)
    assert len(seen) == 16


def test_bad_share_plants_one_row_preprocess_refuses() -> None:
    source = EventSource(pool_size=50, seed=1, bad_share=1.0)
    for n in range(30):
        rows, bad = source.batch(f"r{n}", 5)
        assert bad
        with pytest.raises(RowError):
            Preprocessor().process([row.decode() for row in rows])


@pytest.mark.parametrize("template", BAD_ROWS)
def test_each_bad_row_kind_is_refused(template: bytes) -> None:
    row = template % {b"id": b"x-0"}
    with pytest.raises(RowError):
        Preprocessor().process([row.decode()])


def test_bad_share_is_roughly_the_share_of_bad_requests() -> None:
    source = EventSource(pool_size=20, seed=5, bad_share=0.1)
    bad = sum(source.batch(f"r{n}", 2)[1] for n in range(2000))
    assert 140 < bad < 260


def test_load_options_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="--batch-size"):
        LoadOptions(batch_size=0)
    with pytest.raises(ValueError, match="--bad-share"):
        LoadOptions(bad_share=1.5)
    parsed = type("P", (), {"batch_size": "16", "bad_share": "0", "request_log": "x.jsonl"})()
    options = LoadOptions.from_parsed(parsed)
    assert options.batch_size == 16
    assert options.bad_share == 0.0
    assert options.request_log == Path("x.jsonl")


def test_raw_tensor_is_a_bytes_column() -> None:
    tensor = raw_tensor([b"a", b"b", b"c"])
    assert tensor.shape() == [3, 1]
    assert tensor.datatype() == "BYTES"


# ----------------------------------------------------------------------------- ledger


def test_ledger_round_trip_and_bad_lines(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "sub" / "requests.jsonl")
    log.open()
    log.write(Sent("a", 8, False, True))
    log.write(Sent("b", 8, True, False, "StatusCode.INVALID_ARGUMENT", "row 1"))
    log.close()
    assert read_ledger([log.path]) == [
        Sent("a", 8, False, True),
        Sent("b", 8, True, False, "StatusCode.INVALID_ARGUMENT", "row 1"),
    ]
    (tmp_path / "broken.jsonl").write_text('{"request_id": "a"}\n')
    with pytest.raises(LedgerError, match="broken.jsonl:1"):
        read_ledger([tmp_path / "broken.jsonl"])
    with pytest.raises(LedgerError, match="cannot read"):
        read_ledger([tmp_path / "missing.jsonl"])
    with pytest.raises(LedgerError, match="not open"):
        RequestLog(tmp_path / "x.jsonl").write(Sent("a", 1, False, True))


def test_a_distributed_worker_writes_its_own_ledger() -> None:
    path = Path("loadtest/reports/requests.jsonl")
    assert request_log_path(path, worker=False, pid=42) == path
    assert request_log_path(path, worker=True, pid=42) == Path("loadtest/reports/requests.42.jsonl")


# ----------------------------------------------------------------------------- loss check


class FakeStore:
    """Answers the loss check's two queries from in-memory rows; rows may arrive late."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # request_id, stage, status
        self.predictions: list[tuple[str, str, int]] = []  # request_id, model, row
        self.late: list[tuple[str, str, str]] = []
        self.queries = 0

    def complete(self, request_id: str, rows: int) -> None:
        self.events += [(request_id, stage, "ok") for stage in losscheck.STAGES]
        self.predictions += [
            (request_id, model, row) for model in losscheck.PREDICTION_MODELS for row in range(rows)
        ]

    def __call__(self, sql: str, ids: list[str]) -> list[list]:
        self.queries += 1
        if self.queries > 2:  # from the second poll on, late rows have arrived
            self.events += self.late
            self.late = []
        wanted = set(ids)
        if sql is losscheck.EVENTS_SQL:
            groups: dict[tuple[str, str], list[int]] = {}
            for request_id, stage, status in self.events:
                if request_id in wanted:
                    counts = groups.setdefault((request_id, stage), [0, 0])
                    counts[0 if status == "ok" else 1] += 1
            return [[rid, stage, ok, err] for (rid, stage), (ok, err) in groups.items()]
        rows: dict[tuple[str, str], list[int]] = {}
        for request_id, model, row in self.predictions:
            if request_id in wanted:
                rows.setdefault((request_id, model), []).append(row)
        return [[rid, model, len(r), len(set(r))] for (rid, model), r in rows.items()]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _check(sent: list[Sent], store: FakeStore, wait_s: float = 5.0) -> losscheck.Report:
    clock = FakeClock()
    return losscheck.check(sent, store, wait_s=wait_s, poll_s=1.0, clock=clock, sleep=clock.sleep)


def test_complete_run_passes() -> None:
    store = FakeStore()
    store.complete("ok-1", 8)
    store.events.append(("bad-1", "preprocess", "error"))
    sent = [
        Sent("ok-1", 8, False, True),
        Sent("bad-1", 8, True, False, "StatusCode.INVALID_ARGUMENT", "row 3"),
        Sent("lost-1", 8, False, False, "StatusCode.UNAVAILABLE", "connection reset"),
    ]
    report = _check(sent, store)
    assert report.passed
    assert report.counts == {"answered": 1, "refused": 1, "unseen": 1}


def test_missing_stage_prediction_and_error_rows_fail() -> None:
    store = FakeStore()
    store.complete("ok-1", 4)
    store.events.remove(("ok-1", "forest", "ok"))
    store.predictions.remove(("ok-1", "aggregate", 3))
    sent = [
        Sent("ok-1", 4, False, True),
        Sent("bad-1", 4, True, False, "StatusCode.INVALID_ARGUMENT", "row 0"),
    ]
    report = _check(sent, store, wait_s=3.0)
    assert not report.passed
    assert report.incomplete == {
        "ok-1": ["stage_events forest missing", "predictions aggregate: 3/4 rows"],
        "bad-1": ["no error row in stage_events"],
    }
    assert report.waited_s >= 3.0


def test_duplicated_rows_fail() -> None:
    store = FakeStore()
    store.complete("ok-1", 2)
    store.events.append(("ok-1", "mlp", "ok"))
    store.predictions.append(("ok-1", "logreg", 0))
    report = _check([Sent("ok-1", 2, False, True)], store, wait_s=0.0)
    assert report.incomplete == {
        "ok-1": ["stage_events mlp x2", "predictions logreg: 3 rows for 2"]
    }


def test_rows_that_arrive_late_are_waited_for() -> None:
    store = FakeStore()
    store.complete("ok-1", 2)
    store.events.remove(("ok-1", "aggregate", "ok"))
    store.late.append(("ok-1", "aggregate", "ok"))
    report = _check([Sent("ok-1", 2, False, True)], store, wait_s=10.0)
    assert report.passed
    assert 0.0 < report.waited_s < 10.0


def test_main_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore()
    store.complete("ok-1", 1)
    monkeypatch.setattr(losscheck, "store_query", lambda home: store)
    ledger = tmp_path / "requests.jsonl"
    line = {"request_id": "ok-1", "rows": 1, "bad": False, "ok": True}
    ledger.write_text(json.dumps(line) + "\n")
    assert losscheck.main([str(ledger), "--wait", "0"]) == 0
    ledger.write_text(json.dumps({**line, "request_id": "ok-2"}) + "\n")
    assert losscheck.main([str(ledger), "--wait", "0"]) == 1
    ledger.write_text("")
    assert losscheck.main([str(ledger), "--wait", "0"]) == 2


# ----------------------------------------------------------------------------- locust side


def test_locust_user_helpers_in_a_locust_process() -> None:
    script = textwrap.dedent(
        """
        import locust  # patches for gevent first, as the locust command does
        from tritonclient.utils import InferenceServerException
        from loadtest import triton_user as tu
        import loadtest.pipeline  # registers options, must import cleanly

        assert tu.grpc_target("127.0.0.1:8001") == "127.0.0.1:8001"
        assert tu.grpc_target("grpc://triton:8001/") == "triton:8001"
        for bad in ("", None, "localhost", "http://host:port"):
            try:
                tu.grpc_target(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(bad)
        refused = InferenceServerException("row 1", status="StatusCode.INVALID_ARGUMENT")
        lost = InferenceServerException("gone", status="StatusCode.UNAVAILABLE")
        expect = "StatusCode.INVALID_ARGUMENT"
        assert tu.reported_failure(None, None) is None
        assert tu.reported_failure(lost, None) is lost
        assert tu.reported_failure(refused, expect) is None
        assert tu.reported_failure(lost, expect) is lost
        assert isinstance(tu.reported_failure(None, expect), tu.UnexpectedAnswer)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
