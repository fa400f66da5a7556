"""The fault suite (issue 14): every reproduction against the real stack, with its outcome.

Each case ends in a served request or a coded error naming the field; a crash is restarted by
the supervisor within 30 s and recorded in ClickHouse (service_events, triton_metrics,
server_logs); answered requests lose and duplicate no rows (a killed stub's unflushed records
are counted instead, view stub_rows_lost). The stack is this module's own (it kills its
processes); only pids this stack started are killed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from running import RunningStack, start_stack
from tritonclient.utils import InferenceServerException

from clients.feedback import FeedbackReport, send_reports
from clients.score import score_batch
from logging_backend.config import Settings
from logging_backend.stack import launcher, query, stages, supervisor
from logging_backend.stack.service_state import read_health, recent_events
from training.generator import generate

STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
RECOVERY_S = 30.0
POOL = [item.event for item in generate(64, seed=14)]


def rows(settings: Settings, sql: str, **params: object) -> list[list]:
    """Rows of ``sql`` on the stack's store."""
    return json.loads(query.execute(settings, sql, params, "JSONCompact"))["data"]


def scalar(settings: Settings, sql: str, **params: object) -> float:
    """The one number ``sql`` returns."""
    return float(rows(settings, sql, **params)[0][0])


def eventually(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a store busy restarting: ask again
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {last!r})")


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of this module's own, supervised, probes every second; always stopped."""
    home = tmp_path_factory.mktemp("stagelog-faults")
    os.environ[supervisor.PROBE_MS] = "1000"
    running = None
    try:
        running = start_stack(home)
        eventually(lambda: read_health(running.settings), 60, "the supervisor's first round")
        yield running
    finally:
        os.environ.pop(supervisor.PROBE_MS, None)
        launcher.down(running.settings if running else launcher.settings_from_stack(home))


def _client(stack: RunningStack) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(stack.grpc_url)


def _valid_load(
    stack: RunningStack, prefix: str, clients: int, per_client: int
) -> tuple[list[str], list[str], threading.Thread]:
    """Start ``clients`` threads sending valid one-row requests; (answered, failed, joiner)."""
    answered: list[str] = []
    failed: list[str] = []

    def one(worker: int) -> None:
        client = _client(stack)
        for i in range(per_client):
            rid = f"{prefix}-{worker}-{i}"
            try:
                score_batch(client, [POOL[(worker * 7 + i) % len(POOL)]], rid, timeout_s=30)
                answered.append(rid)
            except InferenceServerException as exc:
                failed.append(f"{rid}: {exc}")
        client.close()

    threads = [threading.Thread(target=one, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join()

    return answered, failed, threading.Thread(target=join)


def _assert_rows_once(settings: Settings, ids: list[str], skip_stage: str = "") -> None:
    """Every answered request has exactly one stage_events row per stage in the store."""
    stages = [s for s in STAGES if s != skip_stage]
    expected = len(stages) * len(ids)
    sql = (
        "SELECT count() FROM stagelog.stage_events WHERE request_id IN {ids:Array(String)} "
        "AND stage IN {stages:Array(String)}"
    )
    eventually(lambda: scalar(settings, sql, ids=ids, stages=stages) >= expected, 60,
               f"{expected} stage_events rows")
    time.sleep(1.0)  # a duplicate would arrive late
    assert scalar(settings, sql, ids=ids, stages=stages) == expected
    assert scalar(
        settings,
        "SELECT count() - uniqExact(request_id, stage) FROM stagelog.stage_events "
        "WHERE request_id IN {ids:Array(String)}",
        ids=ids,
    ) == 0


def _events(settings: Settings, component: str, event: str, model: str = "") -> int:
    return int(scalar(
        settings,
        "SELECT count() FROM stagelog.service_events WHERE component = {c:String} "
        "AND event = {e:String} AND model = {m:String}",
        c=component, e=event, m=model,
    ))


def _stub(stack: RunningStack, model: str) -> stages.Stub:
    server = launcher.running_pid(stack.settings, launcher.TRITON)
    assert server is not None
    (stub,) = [s for s in stages.stubs_of(server) if s.model == model]
    return stub


def _wait_ready(stack: RunningStack, since: float) -> float:
    """Seconds from ``since`` until status says ready again (fails after RECOVERY_S)."""
    def ready() -> bool:
        status = launcher.status(stack.settings)
        return status.ready and not status.down
    eventually(ready, RECOVERY_S + 5, "stack ready again")
    took = time.monotonic() - since
    assert took <= RECOVERY_S, f"ready again only after {took:.1f} s"
    assert score_batch(_client(stack), [POOL[0]], f"after-{uuid.uuid4().hex[:6]}").decisions
    return took


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("field", ["merchant_id", "card_id", "device_id"])
def test_lone_surrogate_is_invalid_arg_naming_row_and_field_and_fails_nobody_else(
    faults: RunningStack, field: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    answered, failed, joiner = _valid_load(faults, f"sur-{field}-{tag}", 8, 12)
    bad = dict(POOL[1], **{field: "x\ud800y"})
    raw = json.dumps(bad)  # the escape \ud800, as a client sends it
    assert "\\ud800" in raw
    errors = []
    client = _client(faults)
    for i in range(10):
        with pytest.raises(InferenceServerException) as err:
            score_batch(client, [POOL[2], raw], f"sur-bad-{tag}-{i}")
        errors.append(err.value)
    joiner.start()
    joiner.join()
    for exc in errors:
        assert "INVALID_ARG" in str(exc.status())
        assert f"row 1: field '{field}'" in exc.message() and "surrogate" in exc.message()
        assert "Traceback" not in exc.message() and "/" not in exc.message()
    assert failed == [] and len(answered) == 8 * 12
    _assert_rows_once(faults.settings, answered)


def test_feedback_detail_nested_2000_deep_is_invalid_arg_and_fails_nobody_else(
    faults: RunningStack,
) -> None:
    tag = uuid.uuid4().hex[:6]
    ok: list[str] = []
    bad_errors: list[InferenceServerException] = []

    def valid(worker: int) -> None:
        client = _client(faults)
        for i in range(30):
            report = FeedbackReport(f"fb-{tag}-{worker}-{i}", 0, "label", "legit")
            ok.extend(send_reports(client, [report]))

    threads = [threading.Thread(target=valid, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    client = _client(faults)
    detail = '{"a":' + "[" * 2000 + "]" * 2000 + "}"
    assert len(detail) < 4096
    for i in range(10):
        inputs_report = FeedbackReport(f"fb-bad-{tag}-{i}", 0, "action", "approve")
        try:
            _send_with_detail(client, inputs_report, detail)
        except InferenceServerException as exc:
            bad_errors.append(exc)
    for thread in threads:
        thread.join()
    assert len(ok) == 6 * 30
    assert len(bad_errors) == 10
    for exc in bad_errors:
        assert "INVALID_ARG" in str(exc.status())
        assert "field 'DETAIL'" in exc.message() and "nested deeper" in exc.message()


def _send_with_detail(client, report: FeedbackReport, detail: str) -> None:
    from clients.feedback import _strings  # noqa: PLC0415 - the client's own tensor helper

    rows_in = grpcclient.InferInput("ROW", [1, 1], "INT32")
    rows_in.set_data_from_numpy(np.array([[report.row]], dtype=np.int32))
    client.infer("feedback", [
        _strings("REQUEST_ID", [report.request_id]), rows_in, _strings("KIND", [report.kind]),
        _strings("VALUE", [report.value]), _strings("DETAIL", [detail]),
    ])


def test_one_request_id_rule_for_pipeline_and_feedback(faults: RunningStack) -> None:
    client = _client(faults)
    longest = "r" + "x" * 127
    assert score_batch(client, [POOL[3]], longest).request_id == longest
    send_reports(client, [FeedbackReport(longest, 0, "label", "legit")])  # its label is taken
    for rid, words in (("x" * 100_000, "longer than 128"), ("x" * 129, "longer than 128"),
                       ("a b", "whitespace")):
        with pytest.raises(InferenceServerException) as err:
            score_batch(client, [POOL[3]], rid)
        assert "INVALID_ARG" in str(err.value.status())
        assert "field 'request_id'" in err.value.message() and words in err.value.message()
        with pytest.raises(InferenceServerException) as err:
            send_reports(client, [FeedbackReport(rid, 0, "label", "legit")])
        assert "field 'REQUEST_ID'" in err.value.message() and words in err.value.message()
    # The 100 KB id is stored nowhere (the refusal is, under a digest).
    eventually(lambda: scalar(
        faults.settings,
        "SELECT count() FROM stagelog.stage_events WHERE stage = 'preprocess' "
        "AND startsWith(request_id, 'invalid-') AND position(error, 'request_id') > 0",
    ) >= 3, 30, "refusals stored")
    assert scalar(faults.settings,
                  "SELECT max(length(request_id)) FROM stagelog.stage_events") <= 128


def test_json_nested_120000_deep_is_refused_on_grpc_and_http_is_off(faults: RunningStack) -> None:
    nested = '{"event_id":"deep","amount":1,"x":' + "[" * 120_000 + "]" * 120_000 + "}"
    with pytest.raises(InferenceServerException) as err:
        score_batch(_client(faults), [nested], f"deep-{uuid.uuid4().hex[:6]}")
    assert "INVALID_ARG" in str(err.value.status()) and "field 'RAW'" in err.value.message()
    # The HTTP/REST door whose JSON parser crashes 2.51 is closed by default.
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", faults.settings.http_port)) != 0
    assert faults.alive()


def test_requests_triton_refuses_before_a_stage_runs_are_rows_in_the_store(
    faults: RunningStack,
) -> None:
    # Triton 2.51 refuses these in ServerInferAsync, counts them in no metric and logs them
    # only at --log-verbose=1: the preloaded refusal_log.c writes logs/refusals.log, the
    # collector tails it into server_logs (source 'refusal', view refused_requests).
    settings = faults.settings
    tag = uuid.uuid4().hex[:6]
    one = np.array([[json.dumps(POOL[0]).encode()]], dtype=object)
    cases = {
        "dtype": ([("RAW", np.zeros((1, 1), dtype=np.float32), "FP32")], "data-type is 'FP32'"),
        "shape": ([("RAW", np.array([[b"{}", b"{}"]], dtype=object), "BYTES")],
                  "unexpected shape for input 'RAW'"),
        "batch": ([("RAW", np.array([[b"{}"]] * 300, dtype=object), "BYTES")],
                  "batch-size must be <= 256"),
        "missing": ([], "missing required input(s) ['RAW']"),
        "extra": ([("RAW", one, "BYTES"), ("EXTRA", one, "BYTES")], "got 2 inputs"),
        "empty": ([("RAW", np.zeros((0, 1), dtype=object), "BYTES")], "got 0"),
    }
    client = _client(faults)
    answers = {}
    for case, (tensors, words) in cases.items():
        inputs = [_tensor(name, data, dtype) for name, data, dtype in tensors]
        with pytest.raises(InferenceServerException) as err:
            client.infer("pipeline", inputs, request_id=f"refused-{case}-{tag}")
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT", case
        assert words in err.value.message(), (case, err.value.message())
        answers[f"refused-{case}-{tag}"] = err.value.message()
    with pytest.raises(InferenceServerException):  # no id at all: stored with ''
        client.infer("pipeline", [_tensor("RAW", np.zeros((1, 1), np.float32), "FP32")])
    client.close()
    # One row per refusal: the id as sent, the model, Triton's message word for word.
    stored = eventually(lambda: (found := rows(
        settings, "SELECT request_id, model, error FROM stagelog.refused_requests "
        "WHERE request_id IN {ids:Array(String)}", ids=list(answers))) and
        len(found) >= len(answers) and found, 30, "refusals in refused_requests")
    assert len(stored) == len(answers), stored  # and none twice
    prefix = re.compile(r"^\[request id: [^\]]*\] ")
    for request_id, model, error in stored:
        assert model == "pipeline", (request_id, model)
        assert error == "Invalid argument: " + prefix.sub("", answers[request_id]), error
    # The id-less refusal was the last line written: the collector's tailer may ship it after
    # the others (it reads what the file holds at each poll), so it is waited for too.
    eventually(lambda: scalar(settings, "SELECT count() FROM stagelog.server_logs "
                              "WHERE source = 'refusal' AND request_id = '' "
                              "AND position(message, 'FP32') > 0") >= 1,
               30, "the id-less refusal in server_logs")
    assert faults.alive()


def _tensor(name: str, data: np.ndarray, dtype: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(data.shape), dtype)
    tensor.set_data_from_numpy(data)
    return tensor


# --------------------------------------------------------------------------- crashes


def test_kill_9_of_a_stub_is_reloaded_within_30_s_recorded_and_counted(
    faults: RunningStack,
) -> None:
    settings = faults.settings
    tag = uuid.uuid4().hex[:6]
    stub = _stub(faults, "forest")
    region = Path("/dev/shm") / stub.shm_region
    answered, failed, joiner = _valid_load(faults, f"stub-{tag}", 4, 60)
    unhealthy_before = _events(settings, "model", "unhealthy", "forest")
    time.sleep(1.0)
    os.kill(stub.pid, signal.SIGKILL)  # a stub of this module's own server
    killed_at = time.monotonic()
    joiner.start()
    joiner.join()
    # Until the supervisor's next probe (every second) the stack still says ready: the load
    # can be over before that (a dead stub's requests fail at once), so wait until the death
    # is seen - forest down in the health file, or (if that was missed) its row in the store.
    eventually(lambda: "forest" in launcher.status(settings).down
               or _events(settings, "model", "unhealthy", "forest") > unhealthy_before,
               RECOVERY_S, "the supervisor seeing forest down")
    took = _wait_ready(faults, killed_at)
    assert answered, failed[:3]
    # While forest is down and being reloaded: the dead stub, then the models being swapped.
    expected = ("not healthy", "not available", "no available versions", "unavailable",
                "not ready", "not found", "unknown model")
    odd = [f for f in failed if not any(word in f.lower() for word in expected)]
    unhealthy = sum("not healthy" in f for f in failed)
    assert odd == [], odd[:3]
    assert not region.exists(), f"{region} left behind"
    eventually(lambda: _events(settings, "model", "unhealthy", "forest") >= 1, 60, "unhealthy")
    eventually(lambda: _events(settings, "model", "restarted", "forest") >= 1, 60, "restarted")
    lost = eventually(lambda: rows(
        settings, "SELECT requests_counted, requests_logged, records_lost FROM "
        "stagelog.stub_rows_lost WHERE pid = {pid:UInt32}", pid=stub.pid), 60, "rows_lost")
    counted, logged, records_lost = (int(x) for x in lost[0])
    assert counted >= logged and records_lost == counted - logged
    # Every other stage logged every answered request exactly once; forest lost at most what
    # stub_rows_lost counts, and duplicated nothing.
    _assert_rows_once(settings, answered, skip_stage="forest")
    # forest (the restarted stub) ships on its own flush: its rows of the last answered
    # requests can land after the other stages' rows, so they are waited for.
    forest_sql = ("SELECT count() FROM stagelog.stage_events WHERE stage = 'forest' "
                  "AND request_id IN {ids:Array(String)}")
    eventually(lambda: scalar(settings, forest_sql, ids=answered)
               >= len(answered) - records_lost, 60,
               f"forest rows of {len(answered)} answered requests, {records_lost} lost")
    time.sleep(1.0)  # a duplicate would arrive late
    forest = scalar(settings, forest_sql, ids=answered)
    assert len(answered) - records_lost <= forest <= len(answered)
    # The failures Triton answered for the dead stub are in the store ("not healthy"; the
    # ones while `pipeline` is unloaded for the reload are NOT_FOUND, counted by no model),
    # Triton's own counter, sampled by the supervisor right before the reload resets it.
    eventually(lambda: scalar(
        settings, "SELECT max(total) FROM (SELECT ts, sum(value) AS total FROM "
        "stagelog.triton_metrics WHERE metric = 'nv_inference_request_failure' AND model = "
        "'pipeline' GROUP BY ts)") >= unhealthy, 60, "pipeline failures counted")
    print(f"stub kill: ready again after {took:.1f} s; {len(answered)} answered, "
          f"{len(failed)} failed, {records_lost} records lost (counted)")


def test_kill_9_of_the_collector_is_restarted_and_loses_nothing(faults: RunningStack) -> None:
    settings = faults.settings
    tag = uuid.uuid4().hex[:6]
    old = launcher.running_pid(settings, launcher.COLLECTOR)
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    client = _client(faults)
    ids = []
    for i in range(40):  # served while the collector is down: they wait in the spool
        ids.append(score_batch(client, [POOL[i % len(POOL)]], f"col-{tag}-{i}").request_id)
    def new_collector_ready() -> dict | None:
        pid = launcher.running_pid(settings, launcher.COLLECTOR)
        info = json.loads(launcher.collector_file(settings).read_text())
        return info if pid not in (None, old) and info["pid"] == pid else None

    info = eventually(new_collector_ready, RECOVERY_S, "a new collector, ready")
    assert time.monotonic() - killed_at <= RECOVERY_S
    status = launcher.status(settings)
    assert status.query_url == info["http_url"]  # not the dead collector's URL
    _assert_rows_once(settings, ids)
    eventually(lambda: _events(settings, "collector", "crash") >= 1, 60, "crash recorded")
    assert any(e["component"] == "collector" and e["event"] == "restarted"
               for e in status.events + recent_events(settings, limit=100))


def test_stagelog_restart_collector_and_model_are_supported(faults: RunningStack) -> None:
    settings = launcher.settings_from_stack(faults.home)
    before = launcher.running_pid(settings, launcher.COLLECTOR)
    message = supervisor.request_restart(settings, "collector")
    assert "restarted" in message
    assert launcher.running_pid(settings, launcher.COLLECTOR) not in (None, before)
    assert "reloaded" in supervisor.request_restart(settings, "logreg")
    assert launcher.status(settings).ready
    eventually(lambda: _events(settings, "model", "restart_requested", "logreg") >= 1, 60,
               "restart request recorded")


def test_kill_9_of_tritonserver_is_restarted_within_30_s_and_recorded(
    faults: RunningStack,
) -> None:
    settings = faults.settings
    old = launcher.running_pid(settings, launcher.TRITON)
    stubs = stages.stubs_of(old)
    os.kill(old, signal.SIGKILL)  # this module's own server
    killed_at = time.monotonic()
    eventually(lambda: launcher.TRITON in ((read_health(settings) or {}).get("down") or {}),
               10, "the server reported down")
    assert not launcher.status(settings).ready
    took = _wait_ready(faults, killed_at)
    new = launcher.running_pid(settings, launcher.TRITON)
    assert new not in (None, old)
    for stub in stubs:
        assert not psutil.pid_exists(stub.pid) or psutil.Process(stub.pid).status() == "zombie"
        assert not (Path("/dev/shm") / stub.shm_region).exists()
    eventually(lambda: _events(settings, "tritonserver", "crash") >= 1, 60, "crash recorded")
    eventually(lambda: _events(settings, "tritonserver", "restarted") >= 1, 60, "restarted")
    # The restarted server is the supervisor's child: a second crash has its signal. Kill it
    # only once the supervisor has seen this very server start (its `restarted` row with this
    # pid; the count above would also take a restart of another server of the module's stack):
    # killed while the supervisor still counts it as starting, it is a `restart_failed`.
    eventually(lambda: scalar(
        settings, "SELECT count() FROM stagelog.service_events WHERE component = "
        "'tritonserver' AND event = 'restarted' AND pid = {p:UInt32}", p=new) >= 1,
        60, "the supervisor saw the new server start")
    os.kill(new, signal.SIGKILL)
    again = time.monotonic()
    _wait_ready(faults, again)
    try:
        eventually(lambda: scalar(
            settings, "SELECT count() FROM stagelog.service_events WHERE component = "
            "'tritonserver' AND event = 'crash' AND signal = 'SIGKILL' AND pid = {p:UInt32}",
            p=new) == 1, 60, "the second crash with its signal")
    except AssertionError as exc:  # what the supervisor did record, for the next reader
        rows = query.execute(
            settings, "SELECT ts, event, pid, signal, detail FROM stagelog.service_events "
            "WHERE component = 'tritonserver' ORDER BY ts", None, "TSV")
        raise AssertionError(f"{exc}; new pid {new}; tritonserver events:\n{rows}") from None
    print(f"tritonserver kill: ready again after {took:.1f} s")


def test_sigstop_of_tritonserver_is_killed_as_hung_restarted_and_recorded(
    faults: RunningStack,
) -> None:
    settings = faults.settings
    old = launcher.running_pid(settings, launcher.TRITON)
    assert old is not None
    stubs = stages.stubs_of(old)
    os.kill(old, signal.SIGSTOP)  # this module's own server: running, answering nothing
    stopped_at = time.monotonic()
    try:
        eventually(lambda: launcher.TRITON in ((read_health(settings) or {}).get("down") or {}),
                   10, "the silent server reported down")
        assert not launcher.status(settings).ready

        def killed() -> bool:
            return not psutil.pid_exists(old) or psutil.Process(old).status() == "zombie"

        eventually(killed, supervisor.HANG_MIN_FAILURES * 3 + settings.hang_ms / 1000 + 10,
                   "the hung server killed")
        killed_at = time.monotonic()
    finally:
        if psutil.pid_exists(old) and psutil.Process(old).status() != "zombie":
            os.kill(old, signal.SIGCONT)  # not killed: let it go on (the test fails above)
    detected = killed_at - stopped_at
    assert detected >= settings.hang_ms / 1000  # not killed before the documented threshold
    took = _wait_ready(faults, killed_at)
    total = time.monotonic() - stopped_at
    new = launcher.running_pid(settings, launcher.TRITON)
    assert new not in (None, old)
    for stub in stubs:  # its group went with it
        assert not psutil.pid_exists(stub.pid) or psutil.Process(stub.pid).status() == "zombie"
    crash = eventually(lambda: rows(
        settings, "SELECT detail, signal FROM stagelog.service_events WHERE component = "
        "'tritonserver' AND event = 'crash' AND pid = {p:UInt32}", p=old), 60, "crash recorded")
    assert len(crash) == 1, crash
    detail, sig = crash[0]
    assert detail.startswith("hung:") and "liveness" in detail and sig == "SIGKILL", crash
    eventually(lambda: scalar(
        settings, "SELECT count() FROM stagelog.service_events WHERE component = "
        "'tritonserver' AND event = 'restart' AND pid = {p:UInt32}", p=new) == 1, 60,
        "the restart recorded")
    # This server's own row: the kill test before it left `restarted` rows of other servers.
    eventually(lambda: scalar(
        settings, "SELECT count() FROM stagelog.service_events WHERE component = "
        "'tritonserver' AND event = 'restarted' AND pid = {p:UInt32}", p=new) == 1, 60,
        "restarted")
    print(f"tritonserver SIGSTOP: killed as hung after {detected:.1f} s (threshold "
          f"{settings.hang_ms / 1000:.0f} s), ready again {took:.1f} s after the kill, "
          f"{total:.1f} s after the SIGSTOP")
