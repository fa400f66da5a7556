"""The wheel set for the H100 check fits the device tool's 64 MiB with the working tree.

Measures the real set that gpu/prepare.sh produces (PyPI is reachable on the machines that run
the tests): the checkout's .whl/ when it was made by the current prepare.sh, else a fresh
build into a temporary folder (a few minutes: downloads, then xz of ~200 MB).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gpu.size import LIMIT_BYTES, travel_size  # noqa: E402

EXPECTED = ("pytriton-slim.tar.xz", "np1-site.tar.xz", "libpython3.12.deb")


def _prepared_by_current_script(folder: Path) -> bool:
    stamp = folder / "PREPARED_BY"
    digest = hashlib.sha256((ROOT / "gpu" / "prepare.sh").read_bytes()).hexdigest()
    return stamp.is_file() and stamp.read_text().strip() == digest


def test_wheel_set_fits_the_64_mib_limit(tmp_path):
    folder = ROOT / ".whl"
    if not _prepared_by_current_script(folder):
        folder = tmp_path / "whl"
        env = dict(os.environ, WHL_DIR=str(folder))
        done = subprocess.run(["bash", "gpu/prepare.sh"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = {p.name for p in folder.iterdir()}
    assert set(EXPECTED) <= names
    assert any(n.startswith("tritonclient-") and n.endswith(".whl") for n in names)
    assert any(n.startswith("python_rapidjson-") and "cp312" in n for n in names)
    sizes = travel_size([folder])
    assert sizes["carried_bytes"] > 40 * 2**20  # the real set, not an empty folder
    assert sizes["total_bytes"] <= LIMIT_BYTES, sizes
