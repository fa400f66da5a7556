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
