"""Whether a refused insert leaves part of its rows behind (the bisection assumes it does not).

Three chunks of n rows each, the last one unparsable (text in a UInt32 column), one insert into
a fresh chDB store; prints the rows stored after the refusal.
Run: ``rm -rf /tmp/i12_atomic_ch; .venv/bin/python bench/results/i12/refused_insert_atomic.py``
"""

import time

import pyarrow as pa

from logging_backend import store

c = store.connect("chdb:///tmp/i12_atomic_ch")
store.migrate(c)


def ev(ids, rows):
    """stage_events rows whose ``rows`` column is text."""
    return pa.table({"ts": pa.array([time.time_ns() // 1000] * len(ids),
                                    pa.timestamp("us", tz="UTC")),
                     "request_id": ids, "stage": ["preprocess"] * len(ids), "rows": rows})


for n_per in (10, 300_000, 700_000):
    a = ev([f"a{i}" for i in range(n_per)], ["1"]*n_per)
    b = ev([f"b{i}" for i in range(n_per)], ["2"]*n_per)
    bad = ev([f"c{i}" for i in range(n_per)], ["x"]*n_per)
    merged = pa.concat_tables([a, b, bad])
    try:
        c.insert_arrow("stagelog.stage_events", merged,
                       settings={"async_insert": 0, "insert_deduplication_token": f"t{n_per}"})
        print("accepted?!")
    except Exception as e:
        print(n_per, "refused:", str(e)[:100])
    print(n_per, "rows now", c.query("SELECT count() FROM stagelog.stage_events").result_rows)
