"""``python -m logging_backend.collector``: run the collector until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from logging_backend import config
from logging_backend.collector.service import Collector
from logging_backend.errors import StagelogError

log = logging.getLogger("stagelog.collector")


def main(tasks: Sequence[Callable[[Collector], Any]] = ()) -> int:
    """Run the collector until SIGTERM/SIGINT; exit 0 after draining.

    Args:
        tasks: started once the store is open, each with the collector (its ``query`` runs
            SQL serialised with shipping); what they return is stopped (``.stop()``) at the
            end. The stack passes the alert evaluator (``logging_backend.stack.collector_process``).
    """
    os.umask(0o077)  # spool, store, logs and run/ files: the owner's only
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s pid=%(process)d: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = config.load()
    except StagelogError as exc:
        log.error("%s", exc)
        return 2
    collector = Collector(settings)
    signal.signal(signal.SIGTERM, collector.request_stop)
    signal.signal(signal.SIGINT, collector.request_stop)
    try:
        collector.open()
    except StagelogError as exc:
        log.error("collector cannot start: %s", exc)
        collector.close()
        return 1
    started = []
    try:
        started = [task(collector) for task in tasks]
        collector.run()
    finally:
        for item in started:
            stop = getattr(item, "stop", None)  # a task may start nothing (None)
            if stop is not None:
                stop()
        collector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
