"""Requests Triton refuses before a stage runs: build `refusal_log.c` and preload it.

Triton 2.51 refuses a request with a wrong datatype or shape, a batch over ``max_batch_size``,
a missing or unknown input or an empty batch inside ``TRITONSERVER_ServerInferAsync``, counts
it in no metric and logs it only at ``--log-verbose=1`` (which logs every served request too).
``refusal_log.c`` wraps that function (LD_PRELOAD) and appends one line per refusal to
``logs/refusals.log``; the collector tails it into ``server_logs`` (view ``refused_requests``).

The library is compiled once per home and source (``$STAGELOG_HOME/lib/refusal_log-<sha>.so``)
with ``$CC`` or ``cc``. Without a compiler, or with ``STAGELOG_REFUSALS=off``, the server runs
without it and refusals are not recorded (the launcher says so in its log).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from logging_backend import config
from logging_backend.collector.triton_watch import REFUSAL_LOG

LOG = logging.getLogger("stagelog.launcher")

SOURCE = Path(__file__).with_name("refusal_log.c")
COMPILE_TIMEOUT_S = 120
_PRELOAD_NAME = "refusal_log-"


def enabled(settings: config.Settings) -> bool:
    """Whether ``STAGELOG_REFUSALS`` (default on, ``Settings.refusals``) asks for them."""
    return settings.refusals


def library_path(home: Path) -> Path:
    """Where the library for this source is built in ``home``."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    return Path(home) / "lib" / f"{_PRELOAD_NAME}{digest}.so"


def build(home: Path, compiler: str | None = None) -> Path | None:
    """Compile the library into ``home`` unless it is there; its path, or None (logged)."""
    target = library_path(home)
    if target.exists():
        return target
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        LOG.warning("no C compiler (cc, $CC): requests Triton refuses before a stage runs "
                    "are not recorded (refusal_log.c)")
        return None
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    command = [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl", "-lpthread"]
    try:
        done = subprocess.run(  # noqa: S603 - our own source, a compiler found on PATH
            command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("could not compile %s (%s): refusals are not recorded", SOURCE, exc)
        return None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        LOG.warning("could not compile %s (exit %d): refusals are not recorded\n%s",
                    SOURCE, done.returncode, done.stderr[-2000:])
        return None
    os.chmod(tmp, 0o700)  # like everything under the home: the owner's only
    os.replace(tmp, target)
    LOG.info("built %s (records requests Triton refuses before a stage runs)", target)
    return target


def preload_env(
    home: Path, env: Mapping[str, str], wanted: bool = True
) -> dict[str, str]:
    """The variables that preload the built library into tritonserver ({} when not built).

    Keeps whatever else ``LD_PRELOAD`` names (the library removes only itself from the
    environment of what tritonserver starts, so the stubs do not load it).
    """
    if not wanted:
        return {}
    library = library_path(home)
    if not library.exists():
        return {}
    others = [
        item for item in env.get("LD_PRELOAD", "").replace(" ", ":").split(":")
        if item and not Path(item).name.startswith(_PRELOAD_NAME)
    ]
    return {
        "LD_PRELOAD": ":".join([str(library), *others]),
        config.REFUSAL_LOG: str(Path(home) / "logs" / REFUSAL_LOG),
    }
