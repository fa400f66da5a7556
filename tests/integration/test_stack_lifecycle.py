"""The launcher against the real tritonserver, on a one-model repository (fast to load)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from running import start_stack

from logging_backend.errors import LauncherError
from logging_backend.spool import layout
from logging_backend.stack import launcher

CONFIG = """
name: "pipeline"
backend: "python"
max_batch_size: 8
input [ { name: "RAW" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "REQUEST_ID" data_type: TYPE_STRING dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

# Answers with what the stub process sees: proves PYTHONPATH, PATH and STAGELOG_* reach it.
MODEL = """
import os
import numpy as np
import triton_python_backend_utils as pb_utils
import logging_backend.config


class TritonPythonModel:
    def initialize(self, args):
        home = os.environ["STAGELOG_HOME"]
        open(os.path.join(home, "stub.pid"), "w").write(str(os.getpid()))
        {fail}
        self.seen = "|".join([
            os.environ.get("STAGELOG_TRITON_VERSION", ""),
            os.environ.get("STAGELOG_LOGGING", ""),
            np.__file__,
        ])

    def execute(self, requests):
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "RAW").as_numpy().shape[0]
            out = np.array([[self.seen.encode()]] * rows, dtype=object)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("REQUEST_ID", out)]))
        return responses
"""


def _repository(root: Path, fail: str = "") -> Path:
    model = root / "pipeline"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(textwrap.dedent(MODEL).replace("{fail}", fail))
    return root


def _ask(url: str) -> str:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("RAW", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"{}"]], dtype=object))
    return client.infer("pipeline", [tensor]).as_numpy("REQUEST_ID")[0, 0].decode()


def test_two_stacks_run_side_by_side_and_stop_cleanly(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo")
    first = start_stack(tmp_path / "a", logging=False, model_repository=repo, timeout=120)
    try:
        second = start_stack(tmp_path / "b", logging=False, model_repository=repo, timeout=120)
        try:
            version, logging_state, numpy_path = _ask(first.grpc_url).split("|")
            assert version == first.stack.triton_version
            assert version.count(".") == 2
            assert logging_state == "off"
            assert numpy_path.startswith(str(Path(sys.prefix)))  # the venv's numpy
            assert _ask(second.grpc_url).startswith(version)
            stub_pid = int((first.home / "stub.pid").read_text())
            assert psutil.pid_exists(stub_pid)
        finally:
            launcher.down(second.settings)
        # Stopping b leaves a serving.
        assert first.alive()
        assert _ask(first.grpc_url)
    finally:
        stopped = launcher.down(first.settings)
    assert stopped == {"tritonserver": first.stack.triton_pid}
    for pid in (first.stack.triton_pid, stub_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not launcher.status(first.settings).running


def test_model_that_fails_to_load_fails_up_with_the_reason(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo", fail="raise RuntimeError('artifact mlp.npz missing')")
    with pytest.raises(LauncherError, match="(?s)artifact mlp.npz missing"):
        start_stack(tmp_path / "home", logging=False, model_repository=repo, timeout=120)
    assert not launcher.status(launcher.settings_from_stack(tmp_path / "home")).running


def test_down_right_after_traffic_keeps_every_logged_request(tmp_path: Path) -> None:
    """`down` stops Triton first (stubs flush in finalize), then the collector drains the spool."""
    from clients.score import score_batch
    from training.generator import generate

    running = start_stack(tmp_path / "home", logging=True, timeout=300)
    try:
        client = grpcclient.InferenceServerClient(running.grpc_url)
        events = [item.event for item in generate(40, seed=77)]
        for index in range(20):
            score_batch(client, events[2 * index : 2 * index + 2], f"drain-{index}")
        client.close()
    finally:
        stopped = launcher.down(running.settings)
    assert list(stopped) == ["tritonserver", "collector"]
    # The store is free again: count in a separate process (chDB allows one path per process).
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, clickhouse_connect; c = clickhouse_connect.get_client("
            "interface='chdb', path=sys.argv[1]); print(c.query(\"SELECT uniqExact(request_id) "
            "FROM stagelog.stage_events WHERE stage = 'aggregate' AND startsWith(request_id, "
            "'drain-')\").result_rows[0][0])",
            str(running.home / "clickhouse"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert count.stdout.strip() == "20", count.stderr
    assert not layout.list_segments(running.home / "spool")  # v1 and v2 segments alike
