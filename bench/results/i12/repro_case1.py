"""Issue 12, case 1 on any checkout: 600 stage_events segments, one refused; count duplicates.

Run: ``.venv/bin/python bench/results/i12/repro_case1.py <checkout>`` where ``<checkout>`` is a
tree with the old collector (``git archive 8b7e6aa | tar -x -C /tmp/i12-old``); it writes v1
segments with that tree's own shipper and prints rows stored vs expected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa


def events(ids: list[str], wall: float | None) -> pa.Table:
    """One segment's rows; ``wall=None`` puts text in wall_ms (the store refuses it)."""
    n = len(ids)
    return pa.table(
        {
            "ts": pa.array([time.time_ns() // 1000] * n, pa.timestamp("us", tz="UTC")),
            "request_id": ids,
            "stage": ["preprocess"] * n,
            "model_name": ["preprocess"] * n,
            "wall_ms": [wall] * n if wall is not None else ["fast"] * n,
        }
    )


def main(tree: str) -> None:
    """Write the segments, run that tree's collector, print what the store holds."""
    sys.path.insert(0, tree)
    from logging_backend import shipper as sh  # noqa: PLC0415 - the checkout's own module

    home = Path("/tmp/i12_old_home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    for i in range(600):
        ids = [f"r{i}-{j}" for j in range(6)]
        sh.write_segment(home / "spool", "stage_events", events(ids, None if i == 300 else 1.0))
    env = dict(os.environ, STAGELOG_HOME=str(home), STAGELOG_COLLECT_INTERVAL_MS="100",
               PYTHONPATH=tree)
    env.pop("STAGELOG_DSN", None)
    with open(home / "c.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "logging_backend.collector"], cwd=tree,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    info = home / "run" / "collector.json"
    while not info.exists():
        time.sleep(0.1)
    url = json.loads(info.read_text())["query_url"]

    def query(sql: str) -> str:
        body = json.dumps({"query": sql, "format": "TSV"}).encode()
        request = urllib.request.Request(url + "/query", data=body, method="POST")
        with urllib.request.urlopen(request) as response:
            return response.read().decode().strip()

    for _ in range(300):
        with urllib.request.urlopen(url + "/health") as response:
            if json.loads(response.read())["pending_segments"] == 0:
                break
        time.sleep(0.2)
    print("tree", tree,
          "rows", query("SELECT count() FROM stagelog.stage_events"),
          "unique", query("SELECT uniqExact(request_id) FROM stagelog.stage_events"),
          "expected", 599 * 6,
          "rejected_rows", query("SELECT sum(rows) FROM stagelog.spool_drops "
                                 "WHERE reason = 'rejected'"))
    proc.terminate()
    proc.wait()


if __name__ == "__main__":
    main(sys.argv[1])
