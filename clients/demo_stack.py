"""Start the demo's stack, or reuse the one already running in the home."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from clients import demo_alerts
from logging_backend import config
from logging_backend.errors import StagelogError
from logging_backend.stack import launcher


def start(console: Console, home: Path | None) -> tuple[config.Settings, bool]:
    """Start the stack in ``home``; return its settings and whether this demo started it.

    A stack already running in the home is reused. When a configured port is taken by
    something else, free ports are used instead (and said so).
    """
    settings = launcher.settings_from_stack(home)
    if launcher.status(settings).running:
        console.print(f"a stack is already running in {settings.home}: using it")
        return settings, False
    try:
        launcher.check_ports(settings)
    except StagelogError as exc:
        grpc_port, http_port, metrics_port = launcher.free_ports(3)
        console.print(f"[yellow]{exc}[/yellow]\nusing free ports instead: gRPC {grpc_port}")
        settings = config.load(
            home=settings.home,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
        )
    demo_alerts.configure()  # the demo's alert rules: windows of seconds, evaluated each second
    console.print(f"starting Triton + collector in {settings.home} (first start takes a while)")
    started = time.monotonic()
    stack = launcher.up(settings)
    console.print(
        f"ready in {time.monotonic() - started:.1f} s: tritonserver {stack.triton_version} "
        f"on gRPC {stack.grpc_url}, logging {'on' if stack.logging else 'off'}"
        + (f", collector at {stack.query_url}" if stack.query_url else "")
    )
    return settings, True
