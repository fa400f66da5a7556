"""``python -m logging_backend.collector``: run the collector until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys

from logging_backend import config
from logging_backend.collector.service import Collector
from logging_backend.errors import StagelogError

log = logging.getLogger("stagelog.collector")


def main() -> int:
    """Run the collector until SIGTERM/SIGINT; exit 0 after draining."""
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
    try:
        collector.run()
    finally:
        collector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
