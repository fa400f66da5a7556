"""A small, really full disk for fault tests: a size-limited tmpfs where the machine allows it.

``small_disk(path, mb)`` mounts a tmpfs of ``mb`` MiB on ``path`` (root in a Linux sandbox)
and always unmounts it; where mounting is refused it raises ``pytest.skip`` naming why, and
the same cases run through the fault-injecting layers of the unit tests instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, mb: int) -> Iterator[Path]:
    """Mount a ``mb`` MiB tmpfs on ``path`` for the block; skip the test where refused."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or shutil.which("mount") is None:
        pytest.skip("no mount(8): cannot make a small disk here")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until the disk under ``directory`` is full (but ``leave_bytes``)."""
    filler = directory / "filler.bin"
    chunk = b"\0" * (64 << 10)
    with open(filler, "ab", buffering=0) as fh:
        while True:
            st = os.statvfs(directory)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            try:
                fh.write(chunk[: max(1, min(len(chunk), free - leave_bytes))])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def free_bytes(directory: Path) -> int:
    """Free bytes on ``directory``'s filesystem."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
