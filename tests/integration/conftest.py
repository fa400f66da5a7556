"""The real stack, started once per test run: tritonserver + collector on free ports.

Every test in tests/integration gets the `integration` marker. The `stack` fixture starts the
repository's model_repository with logging on, in a temporary STAGELOG_HOME whose embedded
ClickHouse (chDB) is this run's own database, and always stops it at the end of the session.
Set STAGELOG_TEST_DSN to run against a ClickHouse server instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from running import RunningStack, start_stack

from logging_backend import config
from logging_backend.stack import launcher


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as `integration`."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The real stack (logging on), shared by the whole test run and always stopped."""
    home = tmp_path_factory.mktemp("stagelog-home")
    settings = None
    try:
        running = start_stack(home)
        settings = running.settings
        yield running
    finally:
        launcher.down(settings or config.load(home=home))
