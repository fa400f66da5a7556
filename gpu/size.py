"""What travels to the device machine, against its 64 MiB limit.

The device tool copies the working tree (tracked files and untracked files git does not
ignore) plus the ignored paths named in ``carry`` (here ``.whl``). Run:
``python gpu/size.py [CARRIED ...]`` (default ``.whl``); exits 1 when over the limit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMIT_BYTES = 64 * 2**20
ROOT = Path(__file__).resolve().parent.parent


def tree_files(root: Path = ROOT) -> list[Path]:
    """Tracked files plus untracked files that git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True,
    ).stdout
    names = sorted({n for n in out.decode().split("\0") if n})
    return [root / n for n in names if (root / n).is_file()]


def carried_files(paths: list[Path]) -> list[Path]:
    """Every file under the carried paths."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"carried path {path} does not exist (run gpu/prepare.sh)")
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


def travel_size(carried: list[Path], root: Path = ROOT) -> dict[str, int]:
    """Bytes of the working tree, of the carried paths, and their total."""
    tree = sum(p.stat().st_size for p in tree_files(root))
    carry = sum(p.stat().st_size for p in carried_files(carried))
    return {"tree_bytes": tree, "carried_bytes": carry, "total_bytes": tree + carry,
            "limit_bytes": LIMIT_BYTES}


def main(argv: list[str]) -> int:
    """Print the sizes; return 1 when the total is over the limit."""
    carried = [Path(a).resolve() for a in argv] or [ROOT / ".whl"]
    sizes = travel_size(carried)
    for path in carried_files(carried):
        print(f"{path.stat().st_size / 2**20:8.2f} MiB  {path.relative_to(path.parents[1])}")
    for key, value in sizes.items():
        print(f"{key:14s} {value:>11d}  ({value / 2**20:.2f} MiB)")
    over = sizes["total_bytes"] > LIMIT_BYTES
    print("OVER the 64 MiB limit" if over else
          f"fits: {(LIMIT_BYTES - sizes['total_bytes']) / 2**20:.2f} MiB to spare")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
