"""logging_backend.gpu with a fake CuPy and a fake NVML; the CPU path through the stage logger."""

from __future__ import annotations

import json
import os
import time

import pytest

from logging_backend.capture import gpu_probe
from logging_backend.capture.batch import InMemoryExporter
from logging_backend.capture.encode import encode
from logging_backend.capture.exporter import _sample_gpu_memory
from logging_backend.capture.records import PolicyNotice
from logging_backend.capture.stage import StageLog
from logging_backend.collector import sampler
from logging_backend.errors import ConfigError
from logging_backend.spool.layout import read_table_segment as read_segment
from tests.gpu_fakes import FakeCupy, FakeEvent, FakeNvml

# --------------------------------------------------------------------------- probe


def test_cpu_probe_times_nothing_and_reports_no_memory():
    probe = gpu_probe.GpuProbe.create("cpu")
    assert (probe.device, probe.device_id) == ("cpu", None)
    span = probe.start()
    assert span is None
    assert probe.stop(span) is None
    assert probe.memory_bytes() is None


def test_gpu_probe_resolves_event_time_off_the_request_path_and_reuses_events():
    cp = FakeCupy(elapsed_ms=2.5)
    probe = gpu_probe.GpuProbe.create("gpu", 1, cupy=cp, nvml=FakeNvml())
    assert (probe.device, probe.device_id, cp.used) == ("gpu", 1, [1])
    pending = probe.stop(probe.start())
    assert isinstance(pending, gpu_probe.PendingGpuTime)
    assert FakeEvent.created == 2
    assert pending.resolve() == 2.5
    assert pending.resolve() == 2.5  # idempotent
    for _ in range(5):  # later requests take events from the pool
        probe.stop(probe.start()).resolve()
    assert FakeEvent.created == 2


def test_gpu_probe_memory_is_this_process_from_nvml_then_cupy_pool():
    nv = FakeNvml(pids={os.getpid(): 123 << 20, 1: 5})
    probe = gpu_probe.GpuProbe.create("gpu", 0, cupy=FakeCupy(), nvml=nv)
    assert nv.bus_lookups == ["0000:00:00.0"]  # handle matched by PCI bus id, once
    assert probe.memory_bytes() == 123 << 20
    # NVML lists only other pids (a container's pid namespace): CuPy's pool answers
    probe = gpu_probe.GpuProbe.create(
        "gpu", 0, cupy=FakeCupy(pool_bytes=777), nvml=FakeNvml(pids={1: 5})
    )
    assert probe.memory_bytes() == 777
    probe = gpu_probe.GpuProbe.create(
        "gpu", 0, cupy=FakeCupy(pool_bytes=9), nvml=FakeNvml(fail_init=True)
    )
    assert probe.memory_bytes() == 9


def test_unusable_gpu_gives_a_cpu_probe_with_the_reason():
    probe = gpu_probe.GpuProbe.create("gpu", 0, cupy=FakeCupy(broken_device=True), nvml=FakeNvml())
    assert probe.device == "cpu"
    assert "cudaErrorNoDevice" in probe.reason
    assert probe.stop(probe.start()) is None


def test_create_rejects_unknown_device():
    with pytest.raises(ConfigError, match="'tpu'"):
        gpu_probe.GpuProbe.create("tpu")


def test_probe_for_instance_uses_tritons_device_id(monkeypatch):
    cp = FakeCupy()
    monkeypatch.setattr(gpu_probe, "_import_cupy", lambda: cp)
    monkeypatch.setattr(gpu_probe, "_import_nvml", lambda: FakeNvml())
    probe = gpu_probe.probe_for_instance({"model_instance_device_id": "0"}, "gpu")
    assert (probe.device, probe.device_id, cp.used) == ("gpu", 0, [0])
    assert gpu_probe.probe_for_instance({"model_instance_device_id": "0"}, "cpu").device == "cpu"


# --------------------------------------------------------------------------- stage logger


def _args(tmp_path, model="mlp"):
    version = tmp_path / "repo" / model / "1"
    version.mkdir(parents=True, exist_ok=True)
    return {
        "model_name": model,
        "model_version": "1",
        "model_repository": str(tmp_path / "repo" / model),
        "model_instance_name": f"{model}_0",
        "model_config": json.dumps({"name": model}),
    }


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGELOG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    monkeypatch.setenv("STAGELOG_FLUSH_MS", "20")
    return tmp_path


def _events(exporter, probe=None):
    mem = _sample_gpu_memory(exporter.items) if probe is not None else None
    return encode(exporter.items, gpu_mem_bytes=mem)


def test_cpu_path_leaves_gpu_columns_null_and_device_cpu(env):
    exporter = InMemoryExporter()
    probe = gpu_probe.GpuProbe.create("cpu")
    log = StageLog.from_triton_args(_args(env), exporter=exporter, gpu=probe)
    with log.request("r1", rows=2) as rec:
        rec.gpu_time(probe.stop(probe.start()))
    log.close()
    (ev,) = _events(exporter, probe)["stage_events"].to_pylist()
    assert ev["device"] == "cpu"
    assert ev["gpu_ms"] is None  # NULL, not 0
    assert ev["gpu_mem_bytes"] is None
    (load,) = encode(exporter.items)["model_versions"].to_pylist()
    assert load["device"] == "cpu"


def test_gpu_path_fills_gpu_ms_memory_and_device_id(env):
    exporter = InMemoryExporter()
    probe = gpu_probe.GpuProbe.create("gpu", 0, cupy=FakeCupy(elapsed_ms=1.25), nvml=FakeNvml())
    log = StageLog.from_triton_args(_args(env), exporter=exporter, gpu=probe)
    for rid in ("r1", "r2"):
        with log.request(rid, rows=4) as rec:
            rec.gpu_time(probe.stop(probe.start()))
    log.close()
    events = _events(exporter, probe)["stage_events"].to_pylist()
    assert [e["gpu_ms"] for e in events] == [1.25, 1.25]
    assert {e["device"] for e in events} == {"gpu:0"}
    assert {e["gpu_mem_bytes"] for e in events} == {123 << 20}


def test_cpu_fallback_is_recorded_in_logging_policy(env):
    exporter = InMemoryExporter()
    log = StageLog.from_triton_args(_args(env), exporter=exporter)
    gpu_probe.record_fallback(
        log, "device 'gpu' asked for, running on CPU: CuPy sees no CUDA device"
    )
    log.close()
    notices = [i for i in exporter.items if isinstance(i, PolicyNotice)]
    assert [(n.scope, n.policy) for n in notices] == [("device", "cpu_fallback")]
    (row,) = encode(exporter.items)["logging_policy"].to_pylist()
    assert row["policy"] == "cpu_fallback" and "CuPy sees no CUDA device" in row["reason"]


def test_record_fallback_ignores_null_logger_and_empty_reason(env, monkeypatch):
    monkeypatch.setenv("STAGELOG_LOGGING", "off")
    # no processor: no error
    gpu_probe.record_fallback(StageLog.from_triton_args(_args(env)), "why")
    exporter = InMemoryExporter()
    monkeypatch.setenv("STAGELOG_LOGGING", "on")
    log = StageLog.from_triton_args(_args(env), exporter=exporter)
    gpu_probe.record_fallback(log, "")
    log.close()
    assert not [i for i in exporter.items if isinstance(i, PolicyNotice)]


# --------------------------------------------------------------------------- device sampler


def test_gpu_count_is_zero_without_nvml_or_gpu():
    assert sampler.gpu_count(FakeNvml(count=2)) == 2
    assert sampler.gpu_count(FakeNvml(fail_init=True)) == 0


def test_sampler_reads_every_gpu():
    dev = sampler.DeviceSampler(nvml=FakeNvml(count=2), host="h1")
    rows = dev.sample()
    assert [r["gpu_index"] for r in rows] == [0, 1]
    row = rows[0]
    assert row["source"] == "gpu" and row["host"] == "h1"
    assert (row["gpu_util"], row["gpu_mem_used"]) == (87.0, 10 << 30)
    assert row["gpu_mem_total"] == 80 << 30
    assert (row["power_w"], row["temperature_c"]) == (312.5, 41.0)


def test_sampler_leaves_an_unsupported_counter_null():
    (row,) = sampler.DeviceSampler(nvml=FakeNvml(power=False)).sample()
    assert row["power_w"] is None and row["gpu_util"] == 87.0


def test_sampler_without_nvml_is_a_noop_that_says_why(caplog):
    caplog.set_level("INFO", logger="stagelog.gpu")
    dev = sampler.DeviceSampler(nvml=FakeNvml(fail_init=True))
    assert not dev.active and dev.sample() == []
    assert "NVML Shared Library Not Found" in caplog.text
    assert sampler.DeviceSampler(nvml=FakeNvml(count=0)).reason == "NVML sees no GPU"


def test_sampler_thread_writes_system_samples_segments(tmp_path):
    thread = sampler.SamplerThread(
        tmp_path / "spool",
        sampler.DeviceSampler(nvml=FakeNvml(count=1)),
        interval_s=0.01,
        segment_every_s=0.05,
    ).start()
    time.sleep(0.3)
    thread.stop()
    segments = sorted((tmp_path / "spool" / "system_samples").glob("*.arrow"))
    assert len(segments) >= 2
    rows = [r for s in segments for r in read_segment(s).to_pylist()]
    assert len(rows) == thread.rows_written >= 5
    assert {r["source"] for r in rows} == {"gpu"} and rows[0]["temperature_c"] == 41.0


def test_sampler_thread_without_gpu_starts_nothing(tmp_path):
    thread = sampler.SamplerThread(
        tmp_path / "spool", sampler.DeviceSampler(nvml=FakeNvml(count=0))
    )
    thread.start()
    thread.stop()
    assert not (tmp_path / "spool").exists()
