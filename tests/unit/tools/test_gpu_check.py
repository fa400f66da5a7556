"""gpu/check.py's spool summary and tarball, on segments shaped like a GPU run's."""

from __future__ import annotations

import json
import tarfile

import pytest

from gpu import check
from tests.gpu_fakes import write_gpu_spool


@pytest.fixture
def gpu_spool(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")

    def args_for(model):
        (tmp_path / "repo" / model / "1").mkdir(parents=True, exist_ok=True)
        return {"model_name": model, "model_version": "1",
                "model_repository": str(tmp_path / "repo" / model),
                "model_instance_name": f"{model}_0", "model_config": json.dumps({"name": model})}

    return write_gpu_spool(args_for, n_requests=5, elapsed_ms=1.25)


def test_summary_has_gpu_time_for_every_member_request(gpu_spool):
    summary = check.summarise_spool(gpu_spool, "gpu")
    assert summary["member_requests"] == 5
    assert summary["member_requests_without_gpu_ms"] == 0
    mlp = summary["stages"]["mlp"]
    assert mlp["devices"] == ["gpu:0"] and mlp["gpu_ms"]["p50"] == 1.25 and mlp["gpu_ms_null"] == 0
    assert mlp["gpu_mem_bytes_max"] == 123 << 20
    pre = summary["stages"]["preprocess"]
    assert pre["devices"] == ["cpu"] and pre["gpu_ms"]["n"] == 0 and pre["gpu_ms_null"] == 5
    assert summary["system_samples"]["rows"] >= 3
    assert summary["system_samples"]["power_w_max"] == 312.5


def test_summary_counts_member_requests_without_gpu_time(tmp_path, gpu_spool):
    import pyarrow as pa

    from logging_backend.capture.exporter import SpoolExporter
    from logging_backend.spool.schemas import SCHEMAS

    row = {name: None for name in SCHEMAS["stage_events"].names}
    row.update(ts=0, request_id="gpu-b1-99999", rows=1, stage="mlp", model_name="mlp",
               status="ok", error="", wall_ms=1.0, cpu_ms=1.0, device="cpu", rss_bytes=0,
               pid=1, attributes=[])
    table = pa.Table.from_pylist([row], schema=SCHEMAS["stage_events"])
    SpoolExporter(gpu_spool).write_segment("stage_events", table)
    summary = check.summarise_spool(gpu_spool, "gpu")
    assert summary["member_requests_without_gpu_ms"] == 1


def test_tar_keeps_every_table_and_drops_tensors_first_when_over_the_limit(tmp_path, gpu_spool):
    full = check.tar_spool(gpu_spool, tmp_path / "all.tar")
    assert full["left_out"] == {} and full["segments"]["stage_tensors"] >= 1
    with tarfile.open(tmp_path / "all.tar") as tar:
        names = tar.getnames()
    assert any(n.startswith("spool/stage_events/") for n in names)
    assert any(n.startswith("spool/system_samples/") for n in names)
    others = sum(p.stat().st_size + 2048 for p in gpu_spool.glob("*/*.arrow")
                 if p.parent.name != "stage_tensors")
    small = check.tar_spool(gpu_spool, tmp_path / "small.tar", limit=others + 64 * 1024 + 100)
    assert (tmp_path / "small.tar").stat().st_size <= others + 64 * 1024 + 100
    assert "stage_tensors" not in small["segments"] and small["left_out"]["stage_tensors"] >= 1
    assert small["segments"]["stage_events"] == full["segments"]["stage_events"]


def test_markdown_report_names_the_card_and_the_gpu_columns(gpu_spool):
    phase = {"phase": "gpu", "load": [{"batch_size": 1, "requests": 5, "events_per_s": 10.0,
                                       "requests_per_s": 10.0, "latency_ms_p50": 1.0,
                                       "latency_ms_p95": 2.0}],
             "spool_summary": check.summarise_spool(gpu_spool, "gpu")}
    text = check.markdown({"card": "NVIDIA H100 80GB HBM3", "started_at": "t", "mode": "gpu",
                           "batch_sizes": [1], "concurrency": 1, "phases": [phase],
                           "probe_cost": {}})
    assert "NVIDIA H100 80GB HBM3" in text and "| mlp | 5 | gpu:0 | " in text
