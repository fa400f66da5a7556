"""The GPU check's CPU-side parts against the real server and the real ClickHouse engine.

- ``gpu/check.py --cpu`` runs end to end (two real tritonserver phases, no collector), and the
  spool it brings back loads with ``stagelog ingest``; a query shows the GPU columns NULL and
  the logged CPU fallback.
- Segments shaped like a GPU run's (CUDA-event timings from a fake CuPy, NVML samples from a
  fake NVML, written by the real spool writer) load the same way and query with ``gpu_ms`` set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.gpu_fakes import write_gpu_spool

ROOT = Path(__file__).resolve().parents[2]


def _stagelog(home: Path, *args: str, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELOG_")}
    done = subprocess.run(
        [sys.executable, "-m", "logging_backend.stack.cli", *args, "--home", str(home)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rows(home: Path, sql: str) -> list[dict]:
    out = _stagelog(home, "sql", sql, "--format", "JSONEachRow")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("gpu-check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELOG_")}
    done = subprocess.run(
        [sys.executable, "gpu/check.py", "--cpu", "--out", str(base / "out"), "--work",
         str(base / "work"), "--batch-sizes", "1,16", "--events-per-batch-size", "32",
         "--min-requests", "2", "--warmup", "1", "--concurrency", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return base


def test_dry_run_writes_the_files_the_lead_brings_back(dry_run):
    out = dry_run / "out"
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "summary.md", "server-logs.txt", "spool-gpu.tar",
            "spool-cpu.tar"} <= names
    assert len(names) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert [p["phase"] for p in summary["phases"]] == ["gpu", "cpu"]
    assert [r["batch_size"] for r in summary["phases"][0]["load"]] == [1, 16]
    assert summary["reference_max_abs_diff_gpu_vs_cpu"] == 0.0
    mlp = summary["phases"][0]["spool_summary"]["stages"]["mlp"]
    assert mlp["devices"] == ["cpu"] and mlp["gpu_ms"]["n"] == 0 and mlp["rows"] > 0


def test_returned_spool_ingests_and_shows_null_gpu_columns_and_the_fallback(dry_run, tmp_path):
    with tarfile.open(dry_run / "out" / "spool-gpu.tar") as tar:
        tar.extractall(tmp_path / "brought", filter="data")
    home = tmp_path / "home"
    assert "ingested" in _stagelog(home, "ingest", str(tmp_path / "brought"))
    rows = _rows(home, "SELECT stage, device, count() AS n, countIf(gpu_ms IS NULL) AS no_gpu, "
                       "countIf(gpu_mem_bytes IS NULL) AS no_mem FROM stagelog.stage_events "
                       "GROUP BY stage, device ORDER BY stage")
    assert {r["stage"] for r in rows} >= {"preprocess", "features", "mlp", "forest", "logreg",
                                          "aggregate"}
    for r in rows:
        assert r["device"] == "cpu" and int(r["n"]) == int(r["no_gpu"]) == int(r["no_mem"])
    fallbacks = _rows(home, "SELECT model_name, reason FROM stagelog.logging_policy "
                            "WHERE policy = 'cpu_fallback'")
    assert {r["model_name"] for r in fallbacks} == {"mlp", "forest", "logreg"}


def test_gpu_shaped_segments_ingest_with_gpu_timings(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "gpu-host"))
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")

    def args_for(model):
        (tmp_path / "repo" / model / "1").mkdir(parents=True, exist_ok=True)
        return {"model_name": model, "model_version": "1",
                "model_repository": str(tmp_path / "repo" / model),
                "model_instance_name": f"{model}_0", "model_config": json.dumps({"name": model})}

    spool = write_gpu_spool(args_for, n_requests=4, elapsed_ms=0.75)
    home = tmp_path / "home"
    _stagelog(home, "ingest", str(spool))
    rows = _rows(home, "SELECT stage, any(device) AS device, count() AS n, "
                       "countIf(gpu_ms IS NOT NULL) AS timed, max(gpu_ms) AS gpu_max, "
                       "max(gpu_mem_bytes) AS mem FROM stagelog.stage_events "
                       "GROUP BY stage ORDER BY stage")
    by_stage = {r["stage"]: r for r in rows}
    for member in ("mlp", "forest", "logreg"):
        r = by_stage[member]
        assert r["device"] == "gpu:0" and int(r["timed"]) == int(r["n"]) == 4
        assert float(r["gpu_max"]) == 0.75 and int(r["mem"]) == 123 << 20
    assert int(by_stage["preprocess"]["timed"]) == 0 and by_stage["preprocess"]["gpu_max"] is None
    (samples,) = _rows(home, "SELECT count() AS n, max(gpu_util) AS util, max(power_w) AS w "
                             "FROM stagelog.system_samples WHERE source = 'gpu'")
    assert int(samples["n"]) >= 3 and float(samples["util"]) == 87.0
    assert float(samples["w"]) == 312.5
