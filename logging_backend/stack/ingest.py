"""`stagelog ingest`: load spool segments brought from another machine into a home's store."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from logging_backend import config, store
from logging_backend.collector.shipper import Shipper
from logging_backend.errors import StoreError
from logging_backend.spool import layout
from logging_backend.spool.layout import SEGMENT_SUFFIX, TMP_SUFFIX, check_table
from logging_backend.stack.query import uses_collector

INGEST_WAIT_S = 300.0


def ingest(
    settings: config.Settings, source: Path, wait_s: float = INGEST_WAIT_S
) -> dict[str, int]:
    """Load spool segments brought from another machine into the home's store.

    ``source`` is a spool directory (v1 ``<table>/<segment>.arrow`` and v2 ``<segment>.seg``
    files) or a home holding ``spool/``.
    The segments are copied into this home's spool (the source is left as it is); a running
    collector ships them, otherwise they are shipped here directly. Returns when they are in.

    Returns:
        ``{"segments": copied, "rows": rows shipped here (0 when the collector shipped)}``.

    Raises:
        StoreError: nothing to ingest, or the segments were not shipped in ``wait_s``.
    """
    spool = source / "spool" if (source / "spool").is_dir() else source
    if not spool.is_dir():
        raise StoreError(f"{source} is not a directory")
    copied: list[Path] = []
    tables = sorted(p for p in spool.iterdir() if p.is_dir() and not p.name.startswith("."))
    for table_dir in tables:
        check_table(table_dir.name)
        for segment in sorted(table_dir.glob("*" + SEGMENT_SUFFIX)):
            target_dir = settings.spool_dir / table_dir.name
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / segment.name
            if target.exists():
                continue
            tmp = target.with_name(target.name + TMP_SUFFIX)
            shutil.copyfile(segment, tmp)
            os.rename(tmp, target)
            copied.append(target)
    for segment in layout.container_segments(spool):  # v2: one file per flush, every table
        target = settings.spool_dir / segment.name
        if target.exists():
            continue
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + TMP_SUFFIX)
        shutil.copyfile(segment, tmp)
        os.rename(tmp, target)
        copied.append(target)
    if not copied:
        raise StoreError(f"no spool segments (<table>/*.arrow) under {spool}")
    if uses_collector(settings) is not None:
        deadline = time.monotonic() + wait_s
        while any(p.exists() for p in copied):
            if time.monotonic() > deadline:
                left = sum(p.exists() for p in copied)
                raise StoreError(f"the collector has not shipped {left} segments in {wait_s:.0f}s")
            time.sleep(0.2)
        return {"segments": len(copied), "rows": 0}
    client = store.connect(settings.dsn)
    store.migrate(client)
    shipper = Shipper(client, settings.spool_dir, destination=store.redact(settings.dsn))
    rows = shipper.ship_all()
    return {"segments": len(copied), "rows": rows}
