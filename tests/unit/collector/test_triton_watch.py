"""Triton's metrics and log into spool rows (logging_backend.triton_watch), without a server."""

from logging_backend.collector import triton_watch as tw
from logging_backend.spool import layout

METRICS = """# HELP nv_inference_request_failure Number of failed inference requests
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="pipeline",reason="REJECTED",version="1"} 3
nv_inference_request_failure{model="forest",reason="BACKEND",version="1"} 121
nv_inference_pending_request_count{model="forest",version="1"} 0
nv_inference_queue_duration_us{model="mlp",version="2"} 1234.5
nv_cpu_utilization 0.5
"""


def test_parse_prometheus_keeps_inference_series_with_labels():
    samples = tw.parse_prometheus(METRICS)
    assert len(samples) == 4
    name, labels, value = samples[1]
    assert name == "nv_inference_request_failure"
    assert labels == {"model": "forest", "reason": "BACKEND", "version": "1"}
    assert value == 121.0


LOG = [
    "I1201 09:12:33.100000 4242 server.cc:674] started",
    "E1201 09:12:34.123456 4242 python_be.cc:1234] \"Stub process 'forest_0_0' is not healthy.\"",
    "W1201 09:12:35.000001 4243 pb_stub.cc:99] Failed to process the request(s) for model "
    "'preprocess_0_0', message: Traceback (most recent call last):",
    '  File "/x/model.py", line 3, in execute',
    "UnicodeEncodeError: 'utf-8' codec can't encode",
    "I1201 09:12:36.000000 4242 server.cc:1] info again",
    "  continuation of info",
    "Signal (11) received.",
]


def test_log_lines_keep_warnings_errors_and_crashes_with_continuations():
    lines = []
    offset = 0
    for line in LOG:
        lines.append((offset, line))
        offset += len(line) + 1
    rows = tw.parse_log_lines(lines, 2026, "/tmp/t.log", "h")
    assert [r["level"] for r in rows] == ["error", "warning", "fatal"]
    assert rows[0]["model"] == "forest" and rows[0]["pid"] == 4242
    assert rows[0]["message"] == "Stub process 'forest_0_0' is not healthy."
    assert rows[0]["ts"].isoformat().startswith("2026-12-01T09:12:34.123456")
    assert "UnicodeEncodeError" in rows[1]["message"] and rows[1]["model"] == "preprocess_0_0"
    assert "Signal (11)" in rows[2]["message"]
    assert rows[1]["log_offset"] == len(LOG[0]) + 1 + len(LOG[1]) + 1


def _messages(spool):
    return [
        m
        for ref in layout.list_segments(spool)
        for name, data in layout.read_segment(ref.path).items()
        if name == "server_logs"
        for m in data.column("message").to_pylist()
    ]


def test_log_tailer_resumes_where_it_stopped_and_restarts_on_a_new_file(tmp_path):
    spool, log = tmp_path / "spool", tmp_path / "tritonserver.log"
    state = tmp_path / "offset.json"
    log.write_text(LOG[1] + "\n" + "E1201 09:00:00.000000 1 a.cc:1] half")
    tailer = tw.LogTailer(spool, log, state)
    tailer.step()
    assert tailer.rows_written == 1  # the half line waits for its end
    with open(log, "a") as handle:
        handle.write(" done\n")
    tw.LogTailer(spool, log, state).step()  # a restarted collector: no repeat
    messages = _messages(spool)
    assert messages == ["Stub process 'forest_0_0' is not healthy.", "half done"]
    with open(log, "a") as handle:
        handle.write("Signal (11) received.\n")  # the crash, not read yet
    log.rename(log.with_name(log.name + ".1"))  # the launcher rotates at the next start
    log.write_text(LOG[1] + "\n")
    tw.LogTailer(spool, log, state).step()
    assert _messages(spool)[2:] == [
        "Signal (11) received.", "Stub process 'forest_0_0' is not healthy."
    ]


def test_metrics_sampler_writes_rows_and_tolerates_no_server(tmp_path):
    sampler = tw.MetricsSampler(tmp_path, "http://127.0.0.1:9/metrics", lambda: 7)
    sampler.step()  # nothing listens: no rows, no exception
    assert sampler.rows_written == 0
    table = tw.metrics_rows(tw.parse_prometheus(METRICS), 7, "h", tw._now())
    assert table.schema == tw.TRITON_METRICS_SCHEMA and table.num_rows == 4


REFUSALS = [
    "E1201 13:12:13.357388 7111 refusal] pipeline\t-1\tr-dtype\tInvalid argument\t[request id: "
    "r-dtype] inference input 'RAW' data-type is 'FP32', but model 'pipeline' expects 'BYTES'",
    "E1201 13:12:13.366412 7111 refusal] mlp\t2\t\tInvalid argument\tunexpected inference input "
    "'NOT_RAW' for model 'mlp'",
    "E1201 13:12:13.368768 7111 refusal] pipeline\t-1\tbad id\\twith tab\tInvalid argument\t"
    "[request id: bad id\\twith tab] line one\\nline two \\\\ \\x01",
    "not a line of refusal_log.c",
]


def _numbered(lines):
    out, offset = [], 0
    for line in lines:
        out.append((offset, line))
        offset += len(line) + 1
    return out


def test_refusal_lines_give_model_request_id_and_tritons_message():
    rows = tw.parse_refusal_lines(_numbered(REFUSALS), 2026, "/h/logs/refusals.log", "host")
    assert len(rows) == 3  # the line of another shape is skipped
    first, second, third = rows
    assert (first["source"], first["level"], first["model"], first["request_id"]) == (
        "refusal", "error", "pipeline", "r-dtype")
    assert first["message"] == (
        "Invalid argument: inference input 'RAW' data-type is 'FP32', but model 'pipeline' "
        "expects 'BYTES'")
    assert first["ts"].isoformat() == "2026-12-01T13:12:13.357388+00:00"
    assert first["pid"] == 7111 and first["log_offset"] == 0
    # No id sent: ''. A version other than latest is named.
    assert second["request_id"] == "" and second["model"] == "mlp"
    assert second["message"].startswith("Invalid argument: version 2: unexpected inference")
    # Escapes undone; an id outside the rule is stored as a digest, never as sent.
    assert third["message"] == "Invalid argument: line one\nline two \\ \x01"
    assert third["request_id"].startswith("invalid-") and len(third["request_id"]) == 24


def test_request_ids_follow_the_request_id_rule():
    assert tw.request_id_of("client-42/7") == "client-42/7"
    assert tw.request_id_of("<id_unknown>") == ""
    assert tw.request_id_of("x" * 129).startswith("invalid-")
    assert tw.request_id_of("a b") != tw.request_id_of("a c")


def test_triton_log_lines_carry_their_request_id():
    line = ("E1201 09:12:34.123456 4242 infer_request.cc:1] \"[request id: abc-1] failed for "
            "model 'forest'\"")
    (row,) = tw.parse_log_lines([(0, line)], 2026, "/l", "h")
    assert row["request_id"] == "abc-1" and row["model"] == "forest"
    (row,) = tw.parse_log_lines([(0, LOG[1])], 2026, "/l", "h")
    assert row["request_id"] == ""


def test_refusal_tailer_reads_the_rotated_file_first_and_writes_server_logs(tmp_path):
    spool, log = tmp_path / "spool", tmp_path / "refusals.log"
    state = tmp_path / "refusal_log.offset"
    log.write_text(REFUSALS[0] + "\n")
    tw.RefusalTailer(spool, log, state).step()
    with open(log, "a") as handle:  # written after the last read, then rotated by the library
        handle.write(REFUSALS[1] + "\n")
    log.rename(log.with_name(log.name + ".1"))
    log.write_text(REFUSALS[2] + "\n")
    tailer = tw.RefusalTailer(spool, log, state)
    tailer.step()
    assert tailer.name == "stagelog-refusal-log"
    tables = [
        data for ref in layout.list_segments(spool)
        for name, data in layout.read_segment(ref.path).items() if name == "server_logs"
    ]
    ids = [i for data in tables for i in data.column("request_id").to_pylist()]
    sources = {s for data in tables for s in data.column("source").to_pylist()}
    assert ids[:2] == ["r-dtype", ""] and ids[2].startswith("invalid-") and len(ids) == 3
    assert sources == {"refusal"}
