"""Per-stub NumPy choice for the GPU check (active only where gpu/check.sh installs it).

The Python-backend stub of tritonserver 2.51 was built with a pybind11 that predates NumPy 2:
under NumPy 2 it builds every array with the wrong item size, so string tensors crash the stub
and ``as_numpy()`` returns garbage (docs/gpu.md). CuPy 14 on the other hand needs NumPy 2.

Python imports this module at start-up: gpu/check.sh puts a ``.pth`` file naming it into the
machine's site-packages (the stub ignores ``PYTHONPATH``, but its ``site`` reads ``.pth``
files) and removes it afterwards. In a stub process serving a model NOT listed in
``STAGELOG_NP2_MODELS`` it puts ``STAGELOG_NP1_SITE`` (NumPy 1.26 + pyarrow 23) first on
``sys.path``; member stubs keep the machine's NumPy 2 and CuPy and exchange tensors with Triton
through DLPack only. Any other process is left alone. The choice is printed to the server log.
"""

import os
import sys


def _choose() -> None:
    site = os.environ.get("STAGELOG_NP1_SITE")
    if not site:
        return
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return
    # argv: <stub> <repository>/<model>/<version>/model.py <shm region> ...
    if len(argv) < 2 or not argv[0].endswith(b"triton_python_backend_stub"):
        return
    parts = argv[1].decode("utf-8", "replace").split("/")
    model = parts[-3] if len(parts) >= 3 else ""
    numpy2 = {m for m in os.environ.get("STAGELOG_NP2_MODELS", "").split(",") if m}
    if model not in numpy2:
        sys.path.insert(0, site)
    choice = "the machine's NumPy" if model in numpy2 else f"NumPy 1 from {site}"
    print(f"stagelog_numpy_split: stub of {model!r} uses {choice}", file=sys.stderr, flush=True)


_choose()
