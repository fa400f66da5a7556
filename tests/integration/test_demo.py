"""`make demo` end to end: its own stack, real traffic, the logged rows, a clean stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from logging_backend import config
from logging_backend.stack import launcher


def test_demo_runs_end_to_end_and_stops_its_stack(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    grpc_port, http_port, metrics_port = launcher.free_ports(3)
    env = dict(os.environ)
    env.update(
        {
            config.GRPC_PORT: str(grpc_port),
            config.HTTP_PORT: str(http_port),
            config.METRICS_PORT: str(metrics_port),
        }
    )
    env.pop(config.DSN, None)
    done = subprocess.run(
        [sys.executable, "-m", "clients.demo", "--home", str(home), "--events", "100"],
        cwd=config.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    try:
        assert done.returncode == 0, output
        assert f"gRPC 127.0.0.1:{grpc_port}" in output
        assert "100 events scored" in output
        # Every bad row is refused with the row and field named, and logged as such.
        assert output.count("INVALID_ARGUMENT") == 5, output
        assert "row 1: field 'amount': must be a finite number >= 0, got nan" in output
        assert "served requests are in ClickHouse" in output
        assert re.search(r"lineage of request demo-[0-9a-f]{6}-lineage", output), output
        assert re.search(r"stage_tensors\s*│\s*[1-9]", output), output
        # the drift alert fires in the drift phase and resolves after it; both are in ClickHouse
        assert "alert fired at" in output and "feature_drift" in output, output
        assert "alert resolved at" in output, output
        # the replay: every stage matches on the served versions, mlp v1 differs
        assert "every stage of the replay matches the log bit for bit (6 stages" in output
        assert re.search(r"│ mlp\s+│\s+v2 │\s+v1 │\s+no │", output), output
        assert "stopped tritonserver" in output and "stopped collector" in output
    finally:
        launcher.down(config.load(home=home))
    assert not launcher.status(config.load(home=home)).running
