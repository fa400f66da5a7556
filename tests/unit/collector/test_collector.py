"""Collector process against the real chDB engine: dedup tokens, query door, CLI, SIGTERM.

Every test runs chDB in child processes: chDB allows one data path per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow as pa

from logging_backend.spool import layout

REPO = Path(__file__).resolve().parents[3]
STAGELOG = [sys.executable, "-m", "logging_backend.stack.cli"]


def env_for(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("STAGELOG_DSN", None)
    env.update(
        STAGELOG_HOME=str(home),
        STAGELOG_COLLECT_INTERVAL_MS="100",
        PYTHONPATH=str(REPO),
    )
    env.update(extra or {})
    return env


def events(ids, wall_ms=1.0):
    now = time.time_ns() // 1000
    return pa.table(
        {
            "ts": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
            "request_id": list(ids),
            "stage": ["preprocess"] * len(ids),
            "model_name": ["preprocess"] * len(ids),
            "wall_ms": [wall_ms] * len(ids),
            "cpu_ms": [0.5] * len(ids),
            "rss_bytes": pa.array([1 << 20] * len(ids), pa.uint64()),
        }
    )


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*STAGELOG, *args], cwd=REPO, env=env_for(home), capture_output=True, text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


class Running:
    """A collector subprocess on ``home``; always stopped."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.log = open(home / "collector.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logging_backend.collector"],
            cwd=REPO, env=env_for(home, extra_env), stdout=self.log, stderr=subprocess.STDOUT,
        )
        info_path = home / "run" / "collector.json"
        deadline = time.monotonic() + 60
        while not info_path.exists():
            assert self.proc.poll() is None, (home / "collector.log").read_text()
            assert time.monotonic() < deadline, "collector.json not written"
            time.sleep(0.05)
        self.info = json.loads(info_path.read_text())

    def client(self):
        import clickhouse_connect

        password = Path(self.info["password_file"]).read_text().strip()
        url = urllib.parse.urlsplit(self.info["http_url"])
        return clickhouse_connect.get_client(
            host=url.hostname, port=url.port, username=self.info["user"], password=password
        )

    def post(self, body: dict) -> tuple[int, bytes]:
        """The query door, as curl would use it (query and format in the URL, basic auth)."""
        password = Path(self.info["password_file"]).read_text().strip()
        params = {"query": body.get("query", ""), "default_format": body.get("format", "TSV")}
        params.update({f"param_{k}": v for k, v in (body.get("params") or {}).items()})
        request = urllib.request.Request(
            self.info["http_url"] + "/?" + urllib.parse.urlencode(params), method="GET",
            headers={"X-ClickHouse-User": self.info["user"], "X-ClickHouse-Key": password},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def health(self) -> dict:
        with urllib.request.urlopen(self.info["metrics_url"] + "?format=json", timeout=30) as r:
            return json.loads(r.read())

    def wait_shipped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.health()["pending_segments"]:
            assert time.monotonic() < deadline, "spool not shipped"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def count(run: Running, sql: str) -> int:
    status, body = run.post({"query": sql, "format": "TSV"})
    assert status == 200, body
    return int(body.decode().strip())


def test_reinserting_the_same_segments_adds_no_rows(tmp_path):
    home = tmp_path / "home"
    spool = home / "spool"
    names = [f"{1000 + i:019d}-h-1-{i:08d}.arrow" for i in range(5)]
    batch = [events([f"r{i}"], wall_ms=float(i)) for i in range(5)]
    for name, data in zip(names, batch, strict=True):
        layout.write_table_segment(spool, "stage_events", data, name=name)
    home.mkdir(exist_ok=True)
    with Running(home) as run:
        run.wait_shipped()
        assert count(run, "SELECT count() FROM stagelog.stage_events") == 5
        assert run.stop() == 0
    # The same segments again, with no manifest (the fallback when a crash leaves none): a
    # collector that starts on them batches them as the first did, so the token is the same.
    # (Rewritten under a running collector they could be picked up as two batches of other
    # tokens; CI saw that race. A stage never writes one name twice.)
    for name, data in zip(names, batch, strict=True):
        layout.write_table_segment(spool, "stage_events", data, name=name)
    with Running(home) as run:
        run.wait_shipped()
        assert count(run, "SELECT count() FROM stagelog.stage_events") == 5
        # (stage_events feeds no view since 0092; the rollup job's exactly-once is tested in
        # tests/unit/store/test_rollup_job.py)
        # Missing columns took their defaults.
        status, body = run.post({"query": "SELECT DISTINCT status, rows, policy "
                                          "FROM stagelog.stage_events", "format": "TSV"})
        assert body.decode().strip() == "ok\t1\tfull"
        assert run.stop() == 0


def test_query_door_binds_parameters_formats_and_reports_errors(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    layout.write_table_segment(home / "spool", "stage_events", events(["a", "b", "c"]))
    with Running(home) as run:
        run.wait_shipped()
        sql = ("SELECT request_id FROM stagelog.stage_events WHERE request_id != {skip:String} "
               "ORDER BY request_id")
        status, body = run.post({"query": sql, "params": {"skip": "b"}, "format": "CSVWithNames"})
        assert (status, body.decode()) == (200, '"request_id"\n"a"\n"c"\n')
        status, body = run.post({"query": "SELECT 1 AS x", "format": "JSONEachRow"})
        assert json.loads(body) == {"x": 1}
        status, body = run.post({"query": "SELECT * FROM stagelog.nope", "format": "TSV"})
        assert status == 404 and b"UNKNOWN_TABLE" in body and b"nope" in body
        status, body = run.post({"query": ""})
        assert status == 400 and b"Empty query" in body
        client = run.client()
        assert client.query(sql, parameters={"skip": "c"}).result_rows == [("a",), ("b",)]
        health = run.health()
        assert health["rows_by_table"] == {"stage_events": 3}
        assert health["pending_segments"] == 0

        # The CLI goes through the door while the collector holds the store.
        out = cli(home, "sql", sql, "--param", "skip=a", "--format", "csv").stdout
        assert out == '"request_id"\n"b"\n"c"\n'
        table = cli(home, "sql", "SELECT count() AS n FROM stagelog.stage_events").stdout
        assert "n" in table and "3" in table
        bad = cli(home, "sql", "SELECT nope", check=False)
        assert bad.returncode == 1 and "UNKNOWN_IDENTIFIER" in bad.stderr
        # Writes through the door are refused; notes reach the store through the collector.
        status, body = run.post({"query": "INSERT INTO stagelog.annotations (id, ts, kind, "
                                          "title, valid_from) SELECT 'x', now64(6), 'event', "
                                          "'forged', now64(6)"})
        assert status == 500 and b"READONLY" in body
        cli(home, "note", "add", "--title", "holiday traffic", "--kind", "event", "--from", "-1h")
        lineage = cli(home, "lineage", "b").stdout
        assert "preprocess" in lineage and "status=ok" in lineage
        assert "notes in effect" in lineage and "holiday traffic" in lineage
        assert "collector" in cli(home, "migrate").stdout
        assert run.stop() == 0
    assert not (home / "run" / "collector.json").exists()
    # With the collector gone, the CLI opens the store directly.
    out = cli(home, "sql", "SELECT count() FROM stagelog.stage_events", "-f", "TSV").stdout
    assert out == "3\n"
    assert "schema is up to date" in cli(home, "migrate").stdout
    assert cli(home, "lineage", "no-such-request", check=False).returncode == 1


def test_sigterm_drains_the_spool_then_exits_zero(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with Running(home) as run:
        # Segments written just before the stop must still arrive.
        for i in range(20):
            layout.write_table_segment(home / "spool", "stage_events", events([f"late{i}"]))
        assert run.stop(signal.SIGTERM) == 0
    assert not list((home / "spool" / "stage_events").glob("*.arrow"))
    out = cli(home, "sql", "SELECT count() FROM stagelog.stage_events", "-f", "TSV").stdout
    assert out == "20\n"


def test_ingest_loads_segments_from_another_machine(tmp_path):
    other = tmp_path / "other" / "spool"
    for i in range(3):
        layout.write_table_segment(other, "stage_events", events([f"gpu{i}"]))
    home = tmp_path / "home"
    # No collector: shipped directly; the source is left as it was.
    assert "ingested 3 segments" in cli(home, "ingest", str(tmp_path / "other")).stdout
    assert len(list((other / "stage_events").glob("*.arrow"))) == 3
    with Running(home) as run:
        more = tmp_path / "more"
        layout.write_table_segment(more, "stage_events", events(["gpu3"]))
        assert "ingested 1 segments" in cli(home, "ingest", str(more)).stdout
        assert count(run, "SELECT count() FROM stagelog.stage_events") == 4
        v2 = tmp_path / "v2"  # what stages write since issue 11: one file per flush
        layout.write_segment(v2, {"stage_events": events(["gpu4", "gpu5"])})
        assert "ingested 1 segments" in cli(home, "ingest", str(v2)).stdout
        assert count(run, "SELECT count() FROM stagelog.stage_events") == 6
        assert len(layout.container_segments(v2)) == 1  # the source is left as it was
        assert run.stop() == 0


def test_collector_enforces_the_spool_budget_with_queryable_drops(tmp_path):
    home = tmp_path / "home"
    spool = home / "spool"
    big = pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000], pa.timestamp("us", tz="UTC")),
            "request_id": ["x"],
            "stage": ["features"],
            "values_f64": pa.array([list(range(100_000))], pa.list_(pa.float64())),
        }
    )
    for _ in range(3):  # ~0.8 MB each: two must go
        layout.write_table_segment(spool, "stage_tensors", big)
    proc_env = env_for(home)
    proc_env["STAGELOG_SPOOL_BUDGET_MB"] = "1"
    log = open(home / "c.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=REPO,
                            env=proc_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (home / "run" / "collector.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = cli(home, "sql", "SELECT reason, sum(segments), sum(rows) FROM stagelog.spool_drops "
              "GROUP BY reason", "-f", "TSV").stdout
    assert out == "budget\t2\t2\n"
    out = cli(home, "sql", "SELECT count() FROM stagelog.stage_tensors", "-f", "TSV").stdout
    assert out == "1\n"
