"""Every arrow lands in ClickHouse: the real Triton stack, the real collector, the real chDB.

The first tests use the session stack; the outage and crash tests stop and kill the collector,
so they run on a stack of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from running import RunningStack, start_stack
from tritonclient.utils import InferenceServerException

from logging_backend.collector import service as collector
from logging_backend.config import Settings
from logging_backend.spool import layout
from logging_backend.stack import launcher, query
from riskpipe.schema import CLASSES
from training.generator import generate

STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
MODELS = ("mlp", "forest", "logreg", "aggregate")
ARRIVAL_TIMEOUT_S = 120.0
REPO = Path(__file__).resolve().parents[2]


def rows(settings: Settings, sql: str, **params: object) -> list[list]:
    """Run ``sql`` on the stack's store and return its rows."""
    result = query.execute(settings, sql, params, "JSONCompact")
    return json.loads(result.decode("utf-8", errors="replace"))["data"]


def scalar(settings: Settings, sql: str, **params: object) -> int:
    return int(rows(settings, sql, **params)[0][0])


def wait_for(settings: Settings, sql: str, expected: int, **params: object) -> None:
    """Wait until ``sql`` (one number) reaches ``expected``; fail if it passes it or times out."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while True:
        value = scalar(settings, sql, **params)
        if value >= expected or time.monotonic() > deadline:
            assert value == expected, f"{sql} -> {value}, expected {expected}"
            return
        time.sleep(0.2)


def events(n: int, seed: int) -> list[dict]:
    return [item.event for item in generate(n, seed)]


def encoded_rows(n: int, seed: int) -> list[bytes]:
    """Raw rows in unusual but valid encodings: the log must keep every byte."""
    out = []
    for i, event in enumerate(events(n, seed)):
        if i % 3 == 0:
            out.append(json.dumps(event, indent=2, ensure_ascii=False).encode())
        elif i % 3 == 1:
            event = dict(event, note="caf\u00e9 \u2014 \U0001f4b3")  # extra field, non-ASCII
            out.append(json.dumps(event, ensure_ascii=False).encode())
        else:
            out.append(b"  " + json.dumps(event, separators=(",", ":")).encode() + b"\n")
    return out


def send_raw(stack: RunningStack, raw: list[bytes], request_id: str) -> None:
    data = np.array([[r] for r in raw], dtype=np.object_)
    stack.infer_raw(data, request_id=request_id)


@pytest.fixture(scope="module")
def logged(stack: RunningStack) -> tuple[RunningStack, list[str], dict[str, list[bytes]]]:
    """N requests with known ids (2 rows each), scored and waited for in the store."""
    prefix = uuid.uuid4().hex[:8]
    sent: dict[str, list[bytes]] = {}
    for i in range(12):
        request_id = f"it-{prefix}-{i}"
        sent[request_id] = encoded_rows(2, seed=100 + i)
        send_raw(stack, sent[request_id], request_id)
    ids = list(sent)
    # Each stage process flushes on its own: wait until every table has all of them.
    wait_for(stack.settings, "SELECT count() FROM stagelog.predictions "
             "WHERE request_id IN {ids:Array(String)}", len(MODELS) * 2 * len(ids), ids=ids)
    wait_for(stack.settings, "SELECT count() FROM stagelog.stage_events "
             "WHERE request_id IN {ids:Array(String)}", len(STAGES) * len(ids), ids=ids)
    wait_for(stack.settings, "SELECT uniqExact(request_id, stage) FROM stagelog.stage_tensors "
             "WHERE request_id IN {ids:Array(String)}", len(STAGES) * len(ids), ids=ids)
    return stack, ids, sent


def test_every_stage_writes_exactly_one_event_per_request(logged) -> None:
    stack, ids, _ = logged
    wait_for(stack.settings, "SELECT count() FROM stagelog.stage_events "
             "WHERE request_id IN {ids:Array(String)}", len(STAGES) * len(ids), ids=ids)
    counts = rows(
        stack.settings,
        "SELECT stage, request_id, count(), any(status), any(rows), any(model_version), "
        "any(triton_version), any(artifact_sha256), any(wall_ms), any(cpu_ms), any(rss_bytes) "
        "FROM stagelog.stage_events WHERE request_id IN {ids:Array(String)} "
        "GROUP BY stage, request_id",
        ids=ids,
    )
    assert sorted((r[0], r[1]) for r in counts) == sorted((s, i) for s in STAGES for i in ids)
    for stage, request_id, n, status, nrows, version, triton, sha, wall, cpu, rss in counts:
        assert n == 1, (stage, request_id)
        assert status == "ok" and int(nrows) == 2
        assert version and triton.startswith("2.") and len(sha) == 64
        assert wall > 0 and cpu >= 0 and int(rss) > 0


def test_every_stage_logs_its_input_and_output_tensors(logged) -> None:
    stack, ids, _ = logged
    found = rows(
        stack.settings,
        "SELECT stage, request_id, countIf(direction = 'input'), countIf(direction = 'output'), "
        "count() - uniqExact(direction, name) FROM stagelog.stage_tensors "
        "WHERE request_id IN {ids:Array(String)} GROUP BY stage, request_id",
        ids=ids,
    )
    assert sorted((r[0], r[1]) for r in found) == sorted((s, i) for s in STAGES for i in ids)
    for stage, request_id, inputs, outputs, duplicates in found:
        assert int(inputs) >= 1 and int(outputs) >= 1, (stage, request_id)
        assert int(duplicates) == 0, (stage, request_id)


def test_raw_input_is_logged_byte_for_byte(logged) -> None:
    stack, ids, sent = logged
    logged_raw = rows(
        stack.settings,
        "SELECT request_id, arrayMap(x -> hex(x), values_str), shape FROM stagelog.stage_tensors "
        "WHERE stage = 'preprocess' AND direction = 'input' AND name = 'RAW' "
        "AND request_id IN {ids:Array(String)}",
        ids=ids,
    )
    assert len(logged_raw) == len(ids)
    for request_id, hexes, shape in logged_raw:
        assert [bytes.fromhex(h) for h in hexes] == sent[request_id]
        assert shape == [2, 1]


def test_predictions_hold_three_probabilities_per_model_and_row(logged) -> None:
    stack, ids, _ = logged
    found = rows(
        stack.settings,
        "SELECT model, request_id, row, count(), probs, mapKeys(class_probs), predicted_class "
        "FROM stagelog.predictions WHERE request_id IN {ids:Array(String)} "
        "GROUP BY model, request_id, row, probs, class_probs, predicted_class",
        ids=ids,
    )
    keys = sorted((m, i, r) for m, i, r, *_ in found)
    assert keys == sorted((m, i, r) for m in MODELS for i in ids for r in (0, 1))
    for model, _, _, n, probs, classes, predicted in found:
        assert n == 1
        assert len(probs) == 3 and sorted(classes) == sorted(CLASSES)
        assert abs(sum(probs) - 1) < 1e-4, model
        assert predicted == CLASSES[int(np.argmax(probs))]


def test_logged_aggregate_is_the_mean_of_the_logged_members(logged) -> None:
    stack, ids, _ = logged
    diffs = rows(
        stack.settings,
        "SELECT request_id, row, "
        "arrayMax(arrayMap((a, m) -> abs(a - m), anyIf(probs, model = 'aggregate'), "
        "avgForEachIf(probs, model != 'aggregate'))), "
        "countIf(model != 'aggregate') "
        "FROM stagelog.predictions WHERE request_id IN {ids:Array(String)} "
        "GROUP BY request_id, row",
        ids=ids,
    )
    assert len(diffs) == 2 * len(ids)
    for request_id, row, diff, members in diffs:
        assert members == 3
        assert diff < 1e-6, (request_id, row, diff)


def test_every_inner_arrow_is_stored_once_and_held(logged) -> None:
    stack, ids, _ = logged
    refs = rows(
        stack.settings,
        "SELECT stage, name, source_stage, source_name, length(values_f32) + length(values_f64)"
        " + length(values_str), length(digest) FROM stagelog.stage_tensors"
        " WHERE direction = 'input' AND request_id IN {ids:Array(String)}",
        ids=ids,
    )
    by_input = {(r[0], r[1]): (r[2], r[3], int(r[4]), int(r[5])) for r in refs}
    for member in ("mlp", "forest", "logreg"):  # FEATURES once, by `features`
        assert by_input[member, "FEATURES"] == ("features", "FEATURES", 0, 32)
    assert by_input["aggregate", "MLP_PROBS"] == ("mlp", "PROBS", 0, 32)
    assert by_input["features", "PROCESSED"] == ("preprocess", "PROCESSED", 0, 32)
    assert by_input["preprocess", "RAW"] == ("", "", 2, 0)  # the ensemble's input: in full
    resolved = rows(
        stack.settings,
        "SELECT stage, name, digest_ok, length(values_num) FROM stagelog.tensor_values"
        " WHERE resolved = 'ref' AND request_id IN {ids:Array(String)}",
        ids=ids,
    )
    assert resolved and all(int(r[2]) == 1 for r in resolved), resolved
    assert all(int(r[3]) == 2 * 45 for r in resolved if r[1] == "FEATURES")  # producer's values
    assert scalar(
        stack.settings,
        "SELECT count() FROM stagelog.arrow_integrity WHERE request_id IN {ids:Array(String)}",
        ids=ids,
    ) == 0
    floats = rows(
        stack.settings,
        "SELECT dtype, length(values_f32), length(values_f64) FROM stagelog.stage_tensors"
        " WHERE stage = 'features' AND name = 'FEATURES' AND request_id = {rid:String}",
        rid=ids[0],
    )
    assert [(r[0], int(r[1]), int(r[2])) for r in floats] == [("float32", 2 * 45, 0)]  # Float32
    reasons = rows(
        stack.settings,
        "SELECT DISTINCT stage, reason FROM stagelog.logging_policy"
        " WHERE scope = 'arrows' AND policy = 'digest'",
    )
    assert {r[0] for r in reasons} >= {"features", "mlp", "forest", "logreg", "aggregate"}
    assert all("logging_arrows=full" in r[1] for r in reasons)


def test_lineage_shows_every_stage_in_pipeline_order(logged) -> None:
    stack, ids, _ = logged
    env = dict(os.environ, STAGELOG_HOME=str(stack.home), STAGELOG_DSN=stack.settings.dsn,
               COLUMNS="200")
    out = subprocess.run(
        [sys.executable, "-m", "logging_backend.stack.cli", "lineage", ids[0]], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    order = ["1 preprocess", "2 features", "3 forest", "3 logreg", "3 mlp", "4 aggregate"]
    positions = [out.find(label) for label in order]
    assert all(p >= 0 for p in positions), out
    assert positions == sorted(positions)
    for arrow in ("event", "input", "output", "state", "prediction", "RAW", "FEATURES"):
        assert arrow in out


def test_a_failing_request_leaves_an_error_row_with_the_message(stack: RunningStack) -> None:
    request_id = f"it-fail-{uuid.uuid4().hex[:8]}"
    good = json.dumps(events(1, seed=7)[0]).encode()
    with pytest.raises(InferenceServerException) as refused:
        send_raw(stack, [good, b"{not json"], request_id)
    assert "row 1" in str(refused.value)
    wait_for(stack.settings, "SELECT count() FROM stagelog.stage_events "
             "WHERE request_id = {r:String} AND status = 'error'", 1, r=request_id)
    ((stage, error),) = rows(
        stack.settings,
        "SELECT stage, error FROM stagelog.stage_events WHERE request_id = {r:String}",
        r=request_id,
    )
    assert stage == "preprocess"
    assert "row 1" in error


# ---------------------------------------------------------------- outage and crash (own stack)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose collector the tests stop and kill; every process is stopped at the end."""
    home = tmp_path_factory.mktemp("stagelog-outage")
    running = None
    try:
        running = start_stack(home)
        yield running
    finally:
        info = collector.read_info(home)
        if info is not None:  # a collector these tests restarted
            _stop_pid(int(info["pid"]), signal.SIGTERM)
        if running is not None:
            launcher.down(running.settings)


def _stop_pid(pid: int, sig: int, timeout: float = 60.0) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if _reap(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _start_collector(settings: Settings) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        STAGELOG_HOME=str(settings.home),
        STAGELOG_DSN=settings.dsn,
        STAGELOG_COLLECT_INTERVAL_MS="200",
        PYTHONPATH=str(REPO),
    )
    log = open(settings.logs_dir / "collector-restarted.log", "a")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 120
    while collector.read_info(settings.home) is None:
        assert proc.poll() is None, "restarted collector exited"
        assert time.monotonic() < deadline, "restarted collector not ready"
        time.sleep(0.05)
    return proc


def _stop_running_collector(settings: Settings, sig: int) -> None:
    info = collector.read_info(settings.home)
    assert info is not None, "no collector runs"
    _stop_pid(int(info["pid"]), sig)
    if sig == signal.SIGKILL:  # it could not remove its file
        collector.info_file(settings.home).unlink(missing_ok=True)


def _spool_segments(settings: Settings) -> int:
    return len(layout.list_segments(settings.spool_dir))  # v2 files and v1 table files


def _score_many(stack: RunningStack, prefix: str, n: int) -> list[str]:
    pool = events(50, seed=3)
    ids = []
    for i in range(n):
        request_id = f"{prefix}-{i}"
        stack.score([pool[i % len(pool)]], request_id=request_id)
        ids.append(request_id)
    return ids


def _assert_exactly_once(settings: Settings, ids: list[str]) -> None:
    per_table = {
        "stage_events": len(STAGES) * len(ids),
        "predictions": len(MODELS) * len(ids),
    }
    for table, expected in per_table.items():
        wait_for(settings, f"SELECT count() FROM stagelog.{table} "
                 "WHERE request_id IN {ids:Array(String)}", expected, ids=ids)
    wait_for(settings, "SELECT uniqExact(request_id, stage) FROM stagelog.stage_tensors "
             "WHERE request_id IN {ids:Array(String)}", len(STAGES) * len(ids), ids=ids)
    assert scalar(
        settings,
        "SELECT count() - uniqExact(request_id, stage) FROM stagelog.stage_events "
        "WHERE request_id IN {ids:Array(String)}",
        ids=ids,
    ) == 0
    assert scalar(
        settings,
        "SELECT count() - uniqExact(request_id, stage, direction, name) "
        "FROM stagelog.stage_tensors WHERE request_id IN {ids:Array(String)}",
        ids=ids,
    ) == 0


def test_records_survive_a_store_outage_of_1000_requests(own_stack: RunningStack) -> None:
    settings = own_stack.settings
    _stop_running_collector(settings, signal.SIGTERM)
    ids = _score_many(own_stack, f"outage-{uuid.uuid4().hex[:6]}", 1000)
    assert own_stack.alive()
    time.sleep(1.5)  # the stages' last flush (STAGELOG_FLUSH_MS, 1 s by default)
    assert _spool_segments(settings) > 0
    _start_collector(settings)
    _assert_exactly_once(settings, ids)


def test_collector_killed_mid_ship_loses_and_duplicates_nothing(own_stack: RunningStack) -> None:
    settings = own_stack.settings
    _stop_running_collector(settings, signal.SIGTERM)
    ids = _score_many(own_stack, f"crash-{uuid.uuid4().hex[:6]}", 300)
    time.sleep(0.5)
    kills = 0
    for _ in range(3):
        proc = _start_collector(settings)
        deadline = time.monotonic() + 30
        while not list(settings.spool_dir.glob("*/.batch-*.json")):
            if time.monotonic() > deadline or _spool_segments(settings) == 0:
                break
            time.sleep(0.001)
        proc.kill()  # SIGKILL, mid-ship when a batch manifest was seen
        proc.wait()
        collector.info_file(settings.home).unlink(missing_ok=True)
        kills += 1
    assert kills == 3
    _start_collector(settings)
    _assert_exactly_once(settings, ids)
