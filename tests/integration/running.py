"""A stack started by the tests: settings, the launcher's record, and helpers to talk to it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from clients.score import Event, ScoreResult, score_batch
from logging_backend import config
from logging_backend.stack import launcher

STARTUP_TIMEOUT_S = 300.0  # the machines have 2 cores shared with other test runs


@dataclass
class RunningStack:
    """A started stack and helpers to talk to it."""

    settings: config.Settings
    stack: launcher.Stack
    _client: grpcclient.InferenceServerClient | None = field(default=None, repr=False)

    @property
    def grpc_url(self) -> str:
        """``127.0.0.1:<port>`` for tritonclient.grpc."""
        return self.stack.grpc_url

    @property
    def home(self) -> Path:
        """This run's STAGELOG_HOME."""
        return self.settings.home

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        """One shared gRPC client."""
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self.grpc_url)
        return self._client

    def score(self, events: Sequence[Event], request_id: str | None = None) -> ScoreResult:
        """Send one batch to `pipeline` (raises InferenceServerException when refused)."""
        return score_batch(self.client, events, request_id)

    def infer_raw(
        self, data: np.ndarray, datatype: str = "BYTES", request_id: str = "", name: str = "RAW"
    ) -> grpcclient.InferResult:
        """Send any tensor as the input of `pipeline` (for wrong dtypes and shapes)."""
        tensor = grpcclient.InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        return self.client.infer("pipeline", [tensor], request_id=request_id)

    def log_tail(self, name: str = launcher.TRITON, lines: int = 80) -> str:
        """The last lines of logs/<name>.log (for assertion messages)."""
        return launcher.log_tail(self.settings.logs_dir / f"{name}.log", lines)

    def alive(self) -> bool:
        """Whether the server still answers and `pipeline` is ready."""
        return launcher.grpc_ready(self.settings.grpc_port)


# The hourly rollups every 2 s instead of every minute: tests read them right after serving.
TEST_ROLLUP_INTERVAL_MS = 2000


def start_stack(home: Path, logging: bool = True, **up_kwargs: object) -> RunningStack:
    """Start a stack in ``home`` on free ports (callers must `launcher.down` it)."""
    grpc_port, http_port, metrics_port = launcher.free_ports(3)
    settings = config.load(
        home=home,
        dsn=os.environ.get("STAGELOG_TEST_DSN") or f"chdb://{home / 'clickhouse'}",
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        logging=logging,
        rollup_interval_ms=TEST_ROLLUP_INTERVAL_MS,
    )
    up_kwargs.setdefault("timeout", STARTUP_TIMEOUT_S)
    stack = launcher.up(settings, **up_kwargs)
    return RunningStack(settings, stack)
