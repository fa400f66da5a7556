"""The collector samples the GPUs into system_samples (a fake NVML stands in for the driver).

The collector runs as a child process (chDB allows one data path per process) with a fake
``pynvml`` module first on its path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

FAKE_PYNVML = '''
from types import SimpleNamespace
def nvmlInit(): pass
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetUtilizationRates(h): return SimpleNamespace(gpu=55, memory=20)
def nvmlDeviceGetMemoryInfo(h): return SimpleNamespace(used=3 << 30, total=80 << 30)
def nvmlDeviceGetPowerUsage(h): return 250000
def nvmlDeviceGetTemperature(h, sensor): return 38
'''


def _env(home: Path, fake: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGELOG_")}
    env["STAGELOG_HOME"] = str(home)
    env["STAGELOG_COLLECT_INTERVAL_MS"] = "100"
    env["PYTHONPATH"] = os.pathsep.join(([str(fake)] if fake else []) + [str(REPO)])
    return env


def _run_collector(home: Path, fake: Path | None, seconds: float) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=REPO,
                            env=_env(home, fake), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (home / "run" / "collector.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "collector not ready"
            time.sleep(0.1)
        time.sleep(seconds)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    return out


def _query(home: Path, sql: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "logging_backend.stack.cli", "sql", sql, "--format", "JSONEachRow"],
        cwd=REPO, env=_env(home, None), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_collector_writes_gpu_samples_about_once_a_second(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_PYNVML)
    home = tmp_path / "home"
    _run_collector(home, fake, seconds=3.5)
    (row,) = _query(home, "SELECT count() AS n, max(gpu_util) AS util, max(gpu_mem_total) AS "
                          "total, max(power_w) AS w, max(temperature_c) AS t, any(gpu_index) AS i "
                          "FROM stagelog.system_samples WHERE source = 'gpu'")
    assert 3 <= int(row["n"]) <= 6  # ~1 per second over ~3.5 s (+ start-up and drain)
    assert (float(row["util"]), int(row["total"]), float(row["w"]), float(row["t"])) == (
        55.0, 80 << 30, 250.0, 38.0)
    assert int(row["i"]) == 0


def test_collector_without_nvml_logs_once_and_writes_no_gpu_rows(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text("def nvmlInit():\n    raise RuntimeError('no driver')\n")
    home = tmp_path / "home"
    out = _run_collector(home, fake, seconds=1.0)
    assert out.count("GPU sampler off") == 1 and "no driver" in out
    (row,) = _query(home, "SELECT count() AS n FROM stagelog.system_samples WHERE source = 'gpu'")
    assert int(row["n"]) == 0
