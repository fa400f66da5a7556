"""The running stack's store through the locked door: real clients, every probe, load, privacy.

The session stack (real tritonserver, real collector, real chDB). Clients are clickhouse-connect's
HTTP client and curl, with the credentials `stagelog up` made.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import clickhouse_connect
import psutil
import pytest
from running import RunningStack

from logging_backend.collector import service as collector
from training.generator import generate

REPO = Path(__file__).resolve().parents[2]
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")


def info(stack: RunningStack) -> dict:
    found = collector.read_info(stack.home)
    assert found, "no collector.json"
    return found


def password(stack: RunningStack) -> str:
    return Path(info(stack)["password_file"]).read_text().strip()


def client(stack: RunningStack):
    url = urllib.parse.urlsplit(info(stack)["http_url"])
    return clickhouse_connect.get_client(host=url.hostname, port=url.port,
                                         username=info(stack)["user"], password=password(stack))


def curl(stack: RunningStack, sql: str, *args: str, **params: str) -> tuple[int, bytes]:
    url = info(stack)["http_url"] + "/?" + urllib.parse.urlencode({"query": sql, **params})
    proc = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args, url],
                          capture_output=True, timeout=120)
    body, _, code = proc.stdout.rpartition(b"\n")
    return int(code), body


def user_args(stack: RunningStack) -> list[str]:
    return ["-u", f"{info(stack)['user']}:{password(stack)}"]


def wait_count(db, sql: str, expected: int, timeout: float = 120, **params) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value = int(db.command(sql, parameters=params or None))
        if value >= expected or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def scored(stack: RunningStack) -> str:
    request_id = f"door-{uuid.uuid4()}"
    stack.score([item.event for item in generate(3, seed=13)], request_id=request_id)
    db = client(stack)
    assert wait_count(db, "SELECT count() FROM stagelog.stage_events "
                          "WHERE request_id = {rid:String}", len(STAGES), rid=request_id) == 6
    return request_id


def test_clickhouse_connect_reads_the_running_store_with_parameters(stack, scored):
    db = client(stack)
    rows = db.query("SELECT stage, rows FROM stagelog.stage_events WHERE request_id = {rid:String} "
                    "ORDER BY ts", parameters={"rid": scored}).result_rows
    assert sorted(r[0] for r in rows) == sorted(STAGES) and {r[1] for r in rows} == {3}
    assert rows[0][0] == "preprocess" and rows[-1][0] == "aggregate"  # members in parallel
    frame = db.query_df("SELECT model, predicted_class FROM stagelog.predictions "
                        "WHERE request_id = {rid:String}", parameters={"rid": scored})
    assert len(frame) == 3 * 4  # three rows, three members + aggregate


def test_curl_reads_with_the_query_in_the_url(stack, scored):
    code, body = curl(stack, "SELECT count() FROM stagelog.stage_events "
                             "WHERE request_id = {rid:String}", *user_args(stack),
                      param_rid=scored)
    assert (code, body) == (200, b"6\n")


def test_no_or_wrong_password_is_refused(stack):
    for args in ([], ["-u", f"{info(stack)['user']}:wrong"], ["-u", "default:"]):
        code, body = curl(stack, "SELECT 1", *args)
        assert code == 403 and b"Code: 516" in body and b"AUTHENTICATION_FAILED" in body


PROBES = [
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT file('/etc/shadow')", "function file()"),
    ("SELECT * FROM url('http://127.0.0.1:{port}/v2', 'LineAsString')", "table function url()"),
    ("INSERT INTO FUNCTION file('{out}', 'CSV', 'x String') SELECT 'owned'", "INSERT statements"),
    ("INSERT INTO stagelog.predictions (request_id, model, predicted_class) "
     "VALUES ('forged', 'mlp', 'legit')", "INSERT statements"),
    ("DROP TABLE stagelog.stage_events", "DROP statements"),
    ("SELECT 1; DROP TABLE stagelog.labels", "Multi-statements are not allowed"),
    ("SYSTEM SHUTDOWN", "SYSTEM statements"),
]


def test_every_probe_is_refused_and_nothing_changes(stack, scored, tmp_path):
    out = tmp_path / "owned.csv"
    pid = info(stack)["pid"]
    for probe, message in PROBES:
        sql = probe.format(out=out, port=stack.settings.http_port)
        code, body = curl(stack, sql, *user_args(stack))
        assert code in (400, 403, 500) and message.encode() in body, (probe, code, body)
        assert b"root:" not in body
    assert not out.exists()
    assert psutil.pid_exists(pid) and info(stack)["pid"] == pid  # SYSTEM SHUTDOWN did nothing
    db = client(stack)
    assert db.command("SELECT count() FROM stagelog.predictions WHERE request_id = 'forged'") == 0
    tables = {r[0] for r in db.query("SHOW TABLES FROM stagelog").result_rows}
    assert {"stage_events", "labels", "predictions"} <= tables
    # Still serving and still shipping.
    request_id = f"after-probes-{uuid.uuid4()}"
    stack.score([item.event for item in generate(1, seed=14)], request_id=request_id)
    assert wait_count(db, "SELECT count() FROM stagelog.stage_events "
                          "WHERE request_id = {rid:String}", 6, rid=request_id) == 6
    assert "refused" in (stack.home / "logs" / "collector.log").read_text()


def test_a_long_query_during_load_does_not_hold_up_shipping(stack):
    db = client(stack)
    long_sql = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1"
    done: dict[str, float] = {}

    def run_long() -> None:
        started = time.monotonic()
        code, body = curl(stack, long_sql, *user_args(stack), max_execution_time="20")
        done["elapsed"] = time.monotonic() - started
        done["code"] = code

    thread = threading.Thread(target=run_long)
    thread.start()
    time.sleep(1.0)
    lags = []
    try:
        for i in range(8):  # load while the query runs: each batch must land within seconds
            if not thread.is_alive():
                break
            request_id = f"under-load-{i}-{uuid.uuid4()}"
            stack.score([item.event for item in generate(4, seed=100 + i)],
                        request_id=request_id)
            answered = time.monotonic()
            count = wait_count(db, "SELECT count() FROM stagelog.stage_events "
                                   "WHERE request_id = {rid:String}", 6, timeout=15,
                               rid=request_id)
            assert count == 6, f"batch {i} not shipped while the long query ran"
            if thread.is_alive():
                lags.append(time.monotonic() - answered)
        assert len(lags) >= 3, f"only {len(lags)} batches landed while the long query ran"
    finally:
        thread.join(60)
    assert done["code"] == 408 and done["elapsed"] >= 19  # max_execution_time, then refused
    print(f"response -> queryable during a 20 s query: median {sorted(lags)[len(lags) // 2]:.2f}"
          f" s, max {max(lags):.2f} s")
    assert max(lags) < 10


def test_a_large_result_streams_with_the_collectors_memory_bounded(stack):
    proc = psutil.Process(info(stack)["pid"])
    before = peak = proc.memory_info().rss
    url = info(stack)["http_url"] + "/?" + urllib.parse.urlencode(
        {"query": "SELECT number, repeat('x', 100) FROM numbers(5000000)"})
    request = urllib.request.Request(url, headers={
        "X-ClickHouse-User": info(stack)["user"], "X-ClickHouse-Key": password(stack)})
    received = 0
    with urllib.request.urlopen(request, timeout=300) as response:
        while chunk := response.read(1 << 20):
            received += len(chunk)
            peak = max(peak, proc.memory_info().rss)
    print(f"streamed {received / 1e6:.0f} MB; collector RSS {before / 1e6:.0f} -> peak "
          f"{peak / 1e6:.0f} MB")
    assert received > 500e6 and peak - before < 300e6


def test_metrics_status_and_traces(stack, scored):
    with urllib.request.urlopen(info(stack)["metrics_url"], timeout=30) as response:
        text = response.read().decode()
    assert 'stagelog_shipped_rows_total{table="stage_events"}' in text
    assert "stagelog_spool_oldest_segment_age_seconds" in text
    out = subprocess.run([sys.executable, "-m", "logging_backend.stack.cli", "status",
                          "--home", str(stack.home)], cwd=REPO, capture_output=True, text=True,
                         timeout=60).stdout
    assert info(stack)["http_url"] in out and f"user {info(stack)['user']}" in out
    assert "segments pending" in out and "stage_events" in out
    assert password(stack) not in out
    spans = client(stack).query(
        "SELECT SpanName, ParentSpanId = '' AS root, Duration FROM stagelog.otel_traces "
        "WHERE TraceId = {rid:String} ORDER BY Timestamp", parameters={"rid": scored}
    ).result_rows
    assert sorted(s[0] for s in spans) == sorted(["pipeline", *STAGES])
    assert sum(s[1] for s in spans) == 1 and all(s[2] > 0 for s in spans)


def test_migrate_while_running_goes_through_the_collector(stack):
    out = subprocess.run([sys.executable, "-m", "logging_backend.stack.cli", "migrate",
                          "--home", str(stack.home)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "every object exists (by the running collector)" in out.stdout


def test_no_file_under_the_home_is_readable_by_others(stack, scored):
    home = stack.home
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "reader.password").st_mode) == 0o600
    exposed = []
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(root) / name
            try:
                st = path.lstat()
            except FileNotFoundError:  # the running store's temporary parts come and go
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                exposed.append(f"{oct(mode)} {path.relative_to(home)}")
    assert not exposed, "\n".join(exposed[:20])
    stack_json = (home / "run" / "stack.json").read_text()
    assert password(stack) not in stack_json
    for log in (home / "logs").glob("*.log"):
        assert password(stack) not in log.read_text(errors="replace"), log
    assert json.loads((home / "run" / "collector.json").read_text()).get("password") is None
