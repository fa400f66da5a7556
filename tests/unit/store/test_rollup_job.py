"""The rollup job (store.rollups, migration 0090) rolls every row up exactly once, in real chDB.

Predictions are the probe: ``prediction_rollup_1h.rows`` must equal the rows inserted (less
replays and health probes) whatever happens between runs: new inserts, late rows with old
timestamps, merges, a run that died between its insert and its ``done`` mark, and a store
migrated from the materialized views of 0072 (their rows are not rolled up twice).
"""

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from logging_backend import store
from logging_backend.store import ledger, rollups

PRED_COLS = ["ts", "request_id", "row", "stage", "model", "model_version", "class_probs",
             "probs", "predicted_class", "decision"]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
PREDICTION = rollups.ROLLUPS[2]


def insert(client, n: int, ts: datetime = NOW, prefix: str = "r") -> None:
    rows = [[ts, f"{prefix}-{i}", 0, "aggregate", "aggregate", "1",
             {"legit": 0.9, "card_fraud": 0.1}, [0.9, 0.1], "legit", "approve"] for i in range(n)]
    client.insert("stagelog.predictions", rows, column_names=PRED_COLS)


def rolled(client) -> int:
    return int(client.query(
        "SELECT sum(rows) FROM stagelog.prediction_rollup_1h").result_rows[0][0] or 0)


@pytest.fixture
def client(tmp_path):
    store.close_all()
    c = store.connect(f"chdb://{tmp_path / 'ch'}")
    store.migrate(c)
    yield c
    store.close_all()


def test_every_row_once_across_runs_merges_and_late_rows(client):
    insert(client, 10)
    assert rollups.run_once(client, (PREDICTION,)) == 1
    assert rollups.run_once(client, (PREDICTION,)) == 0  # nothing new: nothing done
    insert(client, 7)
    insert(client, 5, ts=NOW - timedelta(days=3), prefix="late")  # an old spool, shipped now
    client.command("OPTIMIZE TABLE stagelog.predictions FINAL")  # merged parts keep block numbers
    assert rollups.run_once(client, (PREDICTION,)) == 2  # two partitions (today, 3 days ago)
    assert rolled(client) == 22
    assert rollups.run_once(client, (PREDICTION,)) == 0
    assert rolled(client) == 22


def test_replays_and_probes_are_left_out(client):
    insert(client, 4)
    insert(client, 3, prefix="replay")
    insert(client, 2, prefix="stagelog-probe")
    rollups.run_once(client, (PREDICTION,))
    assert rolled(client) == 4


@pytest.mark.parametrize("inserted", [True, False], ids=["insert-landed", "insert-lost"])
def test_a_run_that_died_before_done_is_finished_once(client, inserted):
    insert(client, 6)
    top = rollups._tops(client, "predictions")
    (partition, block_to), = top.items()
    rng = rollups.Range(PREDICTION.name, partition, 0, block_to)
    rollups._mark(client, rng, "begun")
    if inserted:
        rollups._roll(client, PREDICTION, rng)  # ... and the process died here
    insert(client, 3)
    assert rollups.run_once(client, (PREDICTION,)) == 2  # the open range, then the new one
    assert rolled(client) == 9


def test_rows_the_views_rolled_up_before_0090_are_not_counted_again(tmp_path):
    store.close_all()
    old = tmp_path / "migrations-0073"
    old.mkdir()
    for path in sorted(ledger.MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= 73:
            shutil.copy(path, old / path.name)
    c = store.connect(f"chdb://{tmp_path / 'ch'}")
    try:
        store.migrate(c, directory=Path(old))
        insert(c, 8)  # rolled up by prediction_rollup_1h_mv, at insert
        assert rolled(c) == 8
        store.migrate(c)  # 0090: the views go, the job starts after what they did
        assert rollups.run_once(c) == 0
        insert(c, 2)
        assert rollups.run_once(c) >= 1
        assert rolled(c) == 10
    finally:
        store.close_all()


def test_repair_does_not_bring_the_dropped_rollup_views_back(client):
    from logging_backend.store.repair import missing_objects, repair  # noqa: PLC0415

    client.command("DROP VIEW stagelog.lineage_of")
    assert missing_objects(client) == ["stagelog.lineage_of"]
    assert repair(client) == ["stagelog.lineage_of"]
    views = {name for (name,) in client.query(
        "SELECT name FROM system.tables WHERE database = 'stagelog' "
        "AND engine = 'MaterializedView'").result_rows}
    assert views == set()  # 0090 and 0092 dropped every one; the replay leaves them dropped
    insert(client, 3)
    rollups.run_once(client, (PREDICTION,))
    assert rolled(client) == 3  # the batch alone: not twice


def test_event_rollups_count_each_event_once_and_leave_probes_out(client):
    """request_index and stage_latency_1m (0092): the job, not a view per insert."""
    rows = [[NOW, rid, "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1]
            for rid in ("e-1", "e-2", "stagelog-probe-mlp", "replay-e-1")]
    cols = ["ts", "request_id", "stage", "model_name", "model_version", "status",
            "wall_ms", "cpu_ms", "host", "pid"]
    before = client.query("SELECT sum(requests) FROM stagelog.stage_latency_1m").result_rows[0][0]
    client.insert("stagelog.stage_events", rows, column_names=cols)
    assert rollups.run_once(client, (rollups.STAGE_LATENCY,)) >= 1
    assert rollups.run_once(client, (rollups.STAGE_LATENCY,)) == 0  # nothing new: nothing again
    after = client.query("SELECT sum(requests) FROM stagelog.stage_latency_1m").result_rows[0][0]
    assert after - before == 2  # production events only
    rollups.run_once(client)
    indexed = {r for (r,) in client.query(
        "SELECT request_id FROM stagelog.request_index WHERE startsWith(request_id, 'e-') "
        "OR request_id IN ('stagelog-probe-mlp', 'replay-e-1')").result_rows}
    assert indexed == {"e-1", "e-2", "stagelog-probe-mlp", "replay-e-1"}  # lineage finds all
    lineage = client.query(
        "SELECT count() FROM stagelog.lineage_of(request_id = 'e-1') WHERE kind = 'event'"
    ).result_rows
    assert lineage == [(1,)]


def test_progress_is_folded_and_rows_are_still_rolled_up_once(client, monkeypatch):
    monkeypatch.setattr(rollups, "COMPACT_RANGES", 3)

    def on_record() -> int:
        return int(client.query(
            "SELECT count() FROM stagelog.rollup_progress "
            "WHERE rollup = 'prediction_rollup_1h'").result_rows[0][0])

    for i in range(4):  # four runs with new rows: four ranges, eight rows on record
        insert(client, 2, prefix=f"b{i}")
        assert rollups.run_once(client, (PREDICTION,)) == 1
    # the fourth run folded them: one done row (0, top], no begun rows
    assert on_record() == 1
    marks, open_ranges, ranges = rollups._progress(client, PREDICTION.name)
    assert open_ranges == [] and list(ranges.values()) == [1]
    assert marks == rollups._tops(client, "predictions")
    assert rollups.run_once(client, (PREDICTION,)) == 0  # nothing new after folding
    insert(client, 5, prefix="after")
    assert rollups.run_once(client, (PREDICTION,)) == 1
    assert rolled(client) == 13
    # a fold that died between its row and its DELETE leaves rows that say the same thing
    (partition, top), = rollups._tops(client, "predictions").items()
    rollups._mark(client, rollups.Range(PREDICTION.name, partition, 0, top), "done")
    assert rollups.run_once(client, (PREDICTION,)) == 0
    insert(client, 1, prefix="last")
    assert rollups.run_once(client, (PREDICTION,)) == 1
    assert rolled(client) == 14


def test_the_thread_lets_the_store_go_between_rollups(client):
    """The collector ships on the same client: it waits for one rollup, not a whole run."""
    import threading

    class CountingLock:
        def __init__(self):
            self.inner, self.taken = threading.Lock(), 0

        def __enter__(self):
            self.inner.acquire()
            self.taken += 1

        def __exit__(self, *exc):
            self.inner.release()

    insert(client, 10)
    lock = CountingLock()
    thread = rollups.RollupThread(client, lock, 60.0)
    thread._run()
    assert lock.taken == len(rollups.ROLLUPS) and thread.failures == 0
    assert rolled(client) == 10


def test_a_rollup_step_waits_while_the_collector_ships(client):
    """Set while a poll ships: the next step starts only once it is clear."""
    import threading
    import time

    insert(client, 4)
    shipping = threading.Event()
    shipping.set()
    thread = rollups.RollupThread(client, threading.Lock(), 60.0, yield_to=shipping)
    run = threading.Thread(target=thread._run)
    run.start()
    time.sleep(0.3)
    assert rolled(client) == 0 and run.is_alive()  # waiting for the poll
    shipping.clear()
    run.join(30)
    assert rolled(client) == 4 and thread.failures == 0


@pytest.mark.parametrize("rollup", rollups.ROLLUPS, ids=lambda r: r.name)
def test_a_run_reads_only_the_parts_that_hold_its_range(client, rollup):
    """Not the whole partition: `_block_number` alone prunes no part (the engine reads the
    column of every part of the day), the part-name condition of each SELECT does."""
    client.command(f"SYSTEM STOP MERGES stagelog.{rollup.source}")
    for i in range(6):  # six parts, blocks 1..6 (plus whatever the migrations left)
        if rollup.source == "predictions":
            insert(client, 3, prefix=f"p{i}")
        elif rollup.source == "stage_events":
            client.insert("stagelog.stage_events",
                          [[NOW, f"e{i}", "mlp", "mlp", "1", "ok", 2.0, 1.0, "h", 1]],
                          column_names=["ts", "request_id", "stage", "model_name",
                                        "model_version", "status", "wall_ms", "cpu_ms", "host",
                                        "pid"])  # fmt: skip
        else:
            client.insert("stagelog.stage_tensors", [  # what the feature and field rollups read
                [NOW, f"t{i}", "features", "1", "output", "FEATURES", "float32", [1, 2], [0.5, 1.5],
                 []],
                [NOW, f"t{i}", "preprocess", "1", "output", "PROCESSED", "BYTES", [1, 1], [],
                 ['{"amount": 1}']],
            ], column_names=["ts", "request_id", "stage", "model_version", "direction", "name",
                             "dtype", "shape", "values_f32", "values_str"])  # fmt: skip
    ((partition, top),) = client.query(
        "SELECT partition_id, max(max_block_number) FROM system.parts WHERE database = "
        "'stagelog' AND table = {t:String} AND active GROUP BY partition_id",
        parameters={"t": rollup.source}).result_rows  # fmt: skip
    params = {"partition": partition, "block_from": top - 1, "block_to": top}
    plan = "\n".join(r[0] for r in client.query(
        "EXPLAIN indexes = 1 " + rollup.select(), parameters=params).result_rows)  # fmt: skip
    read = re.findall(r"Parts: (\d+) \| Granules", plan)  # per table read: parts after pruning
    assert read and set(read) == {"1"}, plan
    client.command(f"SYSTEM START MERGES stagelog.{rollup.source}")


FEATURE = next(r for r in rollups.ROLLUPS if r.name == "feature_rollup_1h")
TENSOR_COLS = ["ts", "request_id", "stage", "model_version", "direction", "name", "dtype",
               "shape", "values_f32"]


def feature_rollup(client) -> list[tuple]:
    return client.query(
        "SELECT feature_index, sum(`values`), sum(nan_values), round(sum(value_sum), 4),"
        " toString(sumMapMerge(bins)) FROM stagelog.feature_rollup_1h"
        " GROUP BY feature_index ORDER BY feature_index").result_rows


def test_feature_bins_per_baseline_and_a_far_baseline_index_changes_nothing(client):
    """Values fall in the bins of their feature's latest baseline (no baseline: bin 0); a
    baseline row at feature index 65535 (the query door lets anyone insert one) neither moves a
    bin nor makes every tensor row carry 65,536 edge arrays (the rollup joins them per row)."""
    client.command(
        "INSERT INTO stagelog.feature_baseline (loaded_at, features_version, feature_index,"
        " feature, edges, expected) VALUES"
        # the first row of feature 0 is superseded by the second
        " (now64(6) - INTERVAL 10 SECOND, '1', 0, 'a', [100.0], [0.5, 0.5]),"
        " (now64(6), '1', 0, 'a', [0.5, 1.5], [0.3, 0.4, 0.3]),"
        " (now64(6), '1', 1, 'b', [10.0], [0.5, 0.5])")
    values = [[0.0, 20.0, 1.0], [1.0, 5.0, float("nan")], [2.0, 10.0, 7.0]]  # rows x 3 features
    row = [NOW, "f-1", "features", "1", "output", "FEATURES", "float32", [3, 3],
           [v for r in values for v in r]]
    client.insert("stagelog.stage_tensors", [row], column_names=TENSOR_COLS)
    rollups.run_once(client, (FEATURE,))
    want = [
        (0, 3, 0, 3.0, "([0,1,2],[1,1,1])"),  # 0 < 0.5, 0.5 <= 1 < 1.5, 2 >= 1.5
        (1, 3, 0, 35.0, "([0,1],[1,2])"),  # 5 < 10; 10 and 20 >= 10
        (2, 3, 1, 8.0, "([0],[3])"),  # no baseline: bin 0 (NaN counted, not summed)
    ]
    assert feature_rollup(client) == want
    client.command(
        "INSERT INTO stagelog.feature_baseline (loaded_at, features_version, feature_index,"
        " feature, edges, expected) VALUES (now64(6), '1', 65535, 'far', [1.0], [0.5, 0.5])")
    client.insert("stagelog.stage_tensors", [[*row[:1], "f-2", *row[2:]]], column_names=TENSOR_COLS)
    rollups.run_once(client, (FEATURE,))
    assert feature_rollup(client) == [
        (0, 6, 0, 6.0, "([0,1,2],[2,2,2])"),
        (1, 6, 0, 70.0, "([0,1],[2,4])"),
        (2, 6, 2, 16.0, "([0],[6])"),
    ]
