"""Shipper: exactly-once batches, bisection of refused segments, full disks (fake store).

The fake store deduplicates by (table, token) like ClickHouse's insert_deduplication_token,
so "no row twice" is checked on what it kept. The real engine is in test_collector.py and
test_exactly_once.py.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from logging_backend.collector import shipper as sh
from logging_backend.collector.budget import Budget, DropLog, Reserve
from logging_backend.errors import SpoolFull, StoreUnavailable
from logging_backend.spool import layout

TYPE_MISMATCH = "Code: 53. DB::Exception: Type mismatch in column wall_ms. (TYPE_MISMATCH)"
NO_SPACE = "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"


class Crash(BaseException):
    """The collector dies (SIGKILL) in the middle of an insert sequence."""


class FakeStore:
    """Keeps rows per table; a repeated (table, token) adds nothing; ``refuse`` may raise."""

    def __init__(self, refuse=None, crash_after=None):
        self.refuse = refuse
        self.crash_after = crash_after
        self.sent: list[tuple[str, str, int, dict]] = []
        self.kept: set[tuple[str, str]] = set()
        self.rows: dict[str, list[dict]] = {}

    def insert_arrow(self, table, data, settings=None):
        if self.crash_after is not None and len(self.sent) >= self.crash_after:
            raise Crash
        token = settings["insert_deduplication_token"]
        self.sent.append((table, token, data.num_rows, dict(settings)))
        if self.refuse is not None:
            exc = self.refuse(table, data)
            if exc is not None:
                raise exc
        if (table, token) in self.kept:
            return
        self.kept.add((table, token))
        self.rows.setdefault(table.split(".")[-1], []).extend(data.to_pylist())

    def ids(self, table):
        return Counter(r["request_id"] for r in self.rows.get(table, []))


def now_us():
    return time.time_ns() // 1000


def events(ids, wall=1.0):
    return pa.table(
        {
            "ts": pa.array([now_us()] * len(ids), pa.timestamp("us", tz="UTC")),
            "request_id": list(ids),
            "stage": ["preprocess"] * len(ids),
            "wall_ms": pa.array([wall] * len(ids), pa.float64()),
        }
    )


def bad_events(ids):
    """The column of the wrong type that made the store refuse a segment in the probe."""
    t = events(ids)
    return t.set_column(3, "wall_ms", pa.array(["fast"] * len(ids)))


def tensors(rid, n_values=10):
    return pa.table(
        {
            "ts": pa.array([now_us()], pa.timestamp("us", tz="UTC")),
            "request_id": [rid],
            "stage": ["features"],
            "values_f64": pa.array([[0.5] * n_values], pa.list_(pa.float64())),
        }
    )


def identity(model="mlp"):
    return pa.table(
        {
            "ts": pa.array([now_us()], pa.timestamp("us", tz="UTC")),
            "model_name": [model],
            "model_version": ["1"],
        }
    )


def name(i: int, pid: int = 1) -> str:
    """A segment file name that sorts by ``i``."""
    return f"{1000 + i:019d}-h-{pid}-{i:08d}.arrow"


def v1(spool: Path, table: str, data: pa.Table, i: int) -> Path:
    """A segment of one table."""
    return layout.write_table_segment(spool, table, data, name=name(i))


def flush(spool: Path, tables: dict[str, pa.Table], i: int) -> list[Path]:
    """One flush of one process holding several tables (whatever the layout's format)."""
    return layout.write_segment(spool, tables, name=name(i, pid=2))


def key(path: Path) -> str:
    """A segment's key as the shipper names it (manifests, tokens): its path in the spool.

    Test spools are ``tmp_path`` itself, so a v1 file is ``<table>/<file>``, a v2 one ``<file>``.
    """
    return path.name if path.name.endswith(".seg") else f"{path.parent.name}/{path.name}"


def base(file_name: str) -> str:
    """A segment's name without its format's suffix (``.arrow`` v1, ``.seg`` v2)."""
    return file_name.rsplit(".", 1)[0]


def manifests(spool: Path) -> list[Path]:
    return sh.Shipper(None, spool).manifests()


def files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def many(spool: Path, count: int, start: int = 0, table: str = "stage_events") -> list[Path]:
    return [v1(spool, table, events([f"r{i}"]), i) for i in range(start, start + count)]


def refuse_bad(table, data):
    if "wall_ms" in data.schema.names and data.schema.field("wall_ms").type == pa.string():
        return DatabaseError(TYPE_MISMATCH)
    return None


# ---------------------------------------------------------------- batches and tokens


def test_many_segments_become_one_insert_per_table_with_tokens_from_their_names(tmp_path):
    paths = many(tmp_path, 50)
    paths += flush(tmp_path, {"stage_events": events(["m"]), "stage_tensors": tensors("m")}, 60)
    expected = [key(p) for p in paths if "stage_events" in layout.segment_tables(p)]
    store = FakeStore()
    rows = sh.Shipper(store, tmp_path).ship_all()
    assert rows == 52
    assert [(t, n) for t, _, n, _ in store.sent] == [
        ("stagelog.stage_events", 51), ("stagelog.stage_tensors", 1)
    ]
    assert layout.list_segments(tmp_path) == []  # deleted once every table in it was shipped
    assert store.sent[0][1] == sh.batch_token("stage_events", expected)
    assert not manifests(tmp_path)


def test_segments_with_plain_strings_and_with_dictionaries_go_in_one_insert(tmp_path):
    """Segments of an older stagelog (plain strings) ship with today's (dictionaries) at once."""
    from logging_backend.spool.schemas import LC_STR

    old = events(["old-1", "old-2"])
    new = events(["new-1"])
    new = new.set_column(2, pa.field("stage", LC_STR), new.column("stage").cast(LC_STR))
    flush(tmp_path, {"stage_events": old}, 1)
    flush(tmp_path, {"stage_events": new}, 2)
    store = FakeStore()
    assert sh.Shipper(store, tmp_path).ship_all() == 3
    ((table, _, rows, _),) = store.sent
    assert (table, rows) == ("stagelog.stage_events", 3)
    shipped = sorted(r["request_id"] for r in store.rows["stage_events"])
    assert shipped == ["new-1", "old-1", "old-2"]
    assert {r["stage"] for r in store.rows["stage_events"]} == {"preprocess"}
    assert layout.list_segments(tmp_path) == []


def test_every_insert_is_synchronous_and_deduplicated(tmp_path):
    many(tmp_path, 2)
    store = FakeStore()
    sh.Shipper(store, tmp_path).ship_all()
    (_, token, _, settings), = store.sent
    assert settings == {"async_insert": 0, "insert_deduplicate": 1,
                        "insert_deduplication_token": token}


def test_batches_are_capped_by_segments_and_bytes(tmp_path):
    many(tmp_path, 25)
    store = FakeStore()
    sh.Shipper(store, tmp_path, max_batch_segments=10).ship_all()
    assert [n for *_, n, _ in store.sent] == [10, 10, 5]
    paths = many(tmp_path, 6)
    store = FakeStore()
    sh.Shipper(store, tmp_path, max_batch_bytes=paths[0].stat().st_size * 2).ship_all()
    assert [n for *_, n, _ in store.sent] == [2, 2, 2]


def test_segments_with_column_subsets_are_concatenated(tmp_path):
    v1(tmp_path, "stage_events", events(["a"]), 0)
    v1(tmp_path, "stage_events", events(["b"]).append_column("gpu_ms", pa.array([2.5])), 1)
    store = FakeStore()
    sh.Shipper(store, tmp_path).ship_all()
    assert [r.get("gpu_ms") for r in store.rows["stage_events"]] == [None, 2.5]


def test_transient_failure_keeps_segments_and_the_retry_reuses_the_batch(tmp_path):
    paths = many(tmp_path, 3)
    ship = sh.Shipper(FakeStore(refuse=lambda *_: OperationalError("connection refused")),
                      tmp_path)
    with pytest.raises(StoreUnavailable, match="stagelog.stage_events"):
        ship.ship_all()
    assert all(p.exists() for p in paths)
    assert ship.stats.transient_failures == 1
    later = many(tmp_path, 2, start=3)  # arrive while the store is down
    ship.client = up = FakeStore()
    ship.ship_all()
    assert [t for _, t, _, _ in up.sent] == [
        sh.batch_token("stage_events", [key(p) for p in paths]),
        sh.batch_token("stage_events", [key(p) for p in later]),
    ]
    assert ship.pending() == 0


@pytest.mark.parametrize("message", [NO_SPACE, "Code: 1001. std::exception: "
                                     "No space left on device"])
def test_a_full_store_disk_is_transient_never_a_rejection(tmp_path, message):
    paths = many(tmp_path, 4)
    ship = sh.Shipper(FakeStore(refuse=lambda *_: DatabaseError(message)), tmp_path)
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            ship.ship_all()
    assert all(p.exists() for p in paths)
    assert not (tmp_path / sh.REJECTED_DIR).exists()
    assert sum(ship.drops.rows.values()) == 0
    ship.client = up = FakeStore()
    assert ship.ship_all() == 4  # space is back: the same batch goes in
    assert up.ids("stage_events") == Counter({f"r{i}": 1 for i in range(4)})


# ---------------------------------------------------------------- a refused segment


def test_a_refused_segment_is_set_aside_alone_and_nothing_is_inserted_twice(tmp_path):
    for i in range(40):
        v1(tmp_path, "stage_events", bad_events([f"r{i}"]) if i == 13 else events([f"r{i}"]), i)
    store = FakeStore(refuse=refuse_bad)
    ship = sh.Shipper(store, tmp_path)
    ship.ship_all()
    ship.ship_all()  # the drop record
    assert store.ids("stage_events") == Counter({f"r{i}": 1 for i in range(40) if i != 13})
    tokens = [t for table, t, _, _ in store.sent if table == "stagelog.stage_events"]
    assert len(tokens) == len(set(tokens))  # every insert its own token: none resent
    assert files(tmp_path / sh.REJECTED_DIR) == [f"stage_events/{name(13)}"]
    (drop,) = store.rows["spool_drops"]
    assert (drop["target_table"], drop["rows"], drop["reason"]) == ("stage_events", 1, "rejected")
    assert ship.stats.splits >= 5  # bisected, not one by one
    assert len(tokens) < 20


def test_a_store_that_refuses_a_whole_batch_once_gets_the_same_halves_after_a_crash(tmp_path):
    """The bisection is in the manifest: the replay re-sends the same sub-batches."""
    many(tmp_path, 8)
    calls = {"n": 0}

    def refuse_first(table, data):  # a refusal that does not repeat (not the data's fault)
        calls["n"] += 1
        return DatabaseError("Code: 117. DB::Exception: bad data") if calls["n"] == 1 else None

    first = FakeStore(refuse=refuse_first, crash_after=2)  # refused, one half in, then killed
    with pytest.raises(Crash):
        sh.Shipper(first, tmp_path).ship_all()
    assert len(manifests(tmp_path)) == 1
    second = FakeStore()
    second.kept, second.rows = first.kept, first.rows  # the same store after the restart
    sh.Shipper(second, tmp_path).ship_all()
    assert first.ids("stage_events") == Counter({f"r{i}": 1 for i in range(8)})
    assert second.sent[0][1] == first.sent[1][1]  # the half that was in: same token again
    assert not manifests(tmp_path) and not layout.list_segments(tmp_path)


def refuse_r5(table, data):
    if table.endswith("stage_events") and "r5" in data.column("request_id").to_pylist():
        return DatabaseError(TYPE_MISMATCH)
    return None


@pytest.mark.parametrize("bad", ["refused by the store", "wrong column type"])
def test_a_crash_at_any_insert_of_a_bisection_duplicates_nothing(tmp_path, bad):
    refuse = refuse_r5 if bad == "refused by the store" else refuse_bad
    crash_after = 0
    while True:
        spool = tmp_path / f"c{crash_after}"
        for i in range(16):
            wrong = bad == "wrong column type" and i == 5
            v1(spool, "stage_events", bad_events([f"r{i}"]) if wrong else events([f"r{i}"]), i)
        store = FakeStore(refuse=refuse, crash_after=crash_after)
        try:
            sh.Shipper(store, spool).ship_all()
            crashed = False
        except Crash:
            crashed = True
        store.crash_after = None
        ship = sh.Shipper(store, spool)
        ship.ship_all()
        ship.ship_all()
        assert store.ids("stage_events") == Counter({f"r{i}": 1 for i in range(16) if i != 5})
        assert sum(d["rows"] for d in store.rows["spool_drops"]) == 1, crash_after
        assert not layout.list_segments(spool) and not manifests(spool)
        if not crashed:
            break
        crash_after += 1
    assert crash_after >= 5


def test_segments_of_incompatible_column_types_are_split_not_refused(tmp_path):
    v1(tmp_path, "stage_events", events(["a"]), 0)
    v1(tmp_path, "stage_events", events(["b"]).set_column(
        3, "wall_ms", pa.array([7], pa.int32())).append_column("x", pa.array([{"k": 1}])), 1)
    store = FakeStore()
    sh.Shipper(store, tmp_path).ship_all()
    assert store.ids("stage_events") == Counter({"a": 1, "b": 1})


def test_a_segment_of_several_tables_goes_only_when_each_table_is_shipped_or_set_aside(tmp_path):
    flush(tmp_path, {"stage_events": bad_events(["x"]), "predictions": events(["x"]),
                     "model_versions": identity()}, 0)
    flush(tmp_path, {"stage_events": events(["y"]), "predictions": events(["y"])}, 1)
    store = FakeStore(refuse=refuse_bad)
    ship = sh.Shipper(store, tmp_path)
    ship.ship_all()
    ship.ship_all()
    assert store.ids("stage_events") == Counter({"y": 1})
    assert store.ids("predictions") == Counter({"x": 1, "y": 1})
    assert len(store.rows["model_versions"]) == 1
    rejected = files(tmp_path / sh.REJECTED_DIR)
    assert len(rejected) == 1 and base(name(0, pid=2)) in rejected[0]
    assert not layout.list_segments(tmp_path)[:-1]  # only the drop record is left
    drops = store.rows["spool_drops"]
    assert [(d["target_table"], d["rows"]) for d in drops] == [("stage_events", 1)]


def test_an_unreadable_segment_is_set_aside_and_the_rest_shipped(tmp_path):
    many(tmp_path, 2)
    (tmp_path / "stage_events" / f"{999:019d}-h-1-00000999.arrow").write_bytes(b"junk")
    store = FakeStore()
    ship = sh.Shipper(store, tmp_path)
    ship.ship_all()
    ship.ship_all()
    assert store.ids("stage_events") == Counter({"r0": 1, "r1": 1})
    assert ship.drops.segments["unreadable"] == 1


def test_manifest_whose_segments_are_partly_gone_resends_the_rest_under_the_same_tokens(
    tmp_path,
):
    paths = many(tmp_path, 3)
    store = FakeStore(crash_after=0)
    with pytest.raises(Crash):
        sh.Shipper(store, tmp_path).ship_all()
    paths[0].unlink()  # e.g. a crash while deleting after the insert
    store.crash_after = None
    sh.Shipper(store, tmp_path).ship_all()
    names = [key(p) for p in paths]
    assert store.sent[-1][1] == sh.batch_token("stage_events", names)
    assert not layout.list_segments(tmp_path)


# ---------------------------------------------------------------- full disk


def test_no_insert_is_sent_before_its_manifest_is_written(tmp_path, monkeypatch):
    paths = many(tmp_path, 3)
    real = layout.write_manifest

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout, "write_manifest", full)
    store = FakeStore()
    ship = sh.Shipper(store, tmp_path)
    with pytest.raises(SpoolFull):
        ship.ship_all()
    assert store.sent == [] and all(p.exists() for p in paths)
    monkeypatch.setattr(layout, "write_manifest", real)
    assert ship.ship_all() == 3


def test_drop_counts_wait_in_memory_while_the_disk_is_full(tmp_path, monkeypatch):
    drops = DropLog(tmp_path)
    drops.add("stage_tensors", 2, 7, 100, "budget", "x")
    real = layout.write_segment

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout, "write_segment", full)
    assert drops.flush() is False and len(drops.pending) == 1
    monkeypatch.setattr(layout, "write_segment", real)
    assert drops.flush() is True and not drops.pending
    (ref,) = layout.list_segments(tmp_path)
    (row,) = layout.read_segment(ref.path)["spool_drops"].to_pylist()
    assert (row["target_table"], row["segments"], row["rows"]) == ("stage_tensors", 2, 7)


# ---------------------------------------------------------------- budget


def test_budget_is_the_smaller_of_the_setting_and_the_free_space_floor(tmp_path):
    budget = Budget(tmp_path, budget_bytes=1000, min_free_bytes=300, free=lambda _: 500)
    assert budget.limit(used=600) == 800  # 600 + 500 - 300
    budget.free = lambda _: 5000
    assert budget.limit(used=600) == 1000
    budget.free = lambda _: 100
    assert budget.limit(used=0) == 0


def test_budget_drops_tensors_then_events_and_keeps_model_identity(tmp_path):
    for i in range(4):
        v1(tmp_path, "stage_tensors", tensors(f"t{i}", 3000), i)
    for i in range(4, 8):
        v1(tmp_path, "stage_events", events([f"e{i}"]), i)
    v1(tmp_path, "model_versions", identity(), 8)
    v1(tmp_path, "logging_policy", identity(), 9)
    ship = sh.Shipper(FakeStore(), tmp_path)
    drops = ship.drops
    sizes = {key(r.path): r.size for r in layout.list_segments(tmp_path)}
    total = sum(sizes.values())
    # A disk with room for everything but two tensor segments.
    tensor_size = sizes[f"stage_tensors/{name(0)}"]
    budget = Budget(tmp_path, None, min_free_bytes=0, free=lambda _: 0, low_water=1.0)
    budget.budget_bytes = total - tensor_size - 1
    assert budget.enforce(drops) == 2
    left = Counter(t for r in layout.list_segments(tmp_path) for t in layout.segment_tables(r.path))
    assert left["stage_tensors"] == 2 and left["stage_events"] == 4
    # Next the disk is almost gone: every tensor, then events, never identity or policy.
    budget.budget_bytes = 1
    budget.enforce(drops)
    left = sorted(t for r in layout.list_segments(tmp_path) for t in layout.segment_tables(r.path))
    assert left == ["logging_policy", "model_versions", "spool_drops", "spool_drops"]
    assert drops.rows == Counter({"stage_tensors": 4, "stage_events": 4})


def test_budget_strips_tables_from_a_segment_of_several_and_keeps_its_place(tmp_path):
    paths = flush(tmp_path, {"stage_tensors": tensors("a", 20000), "stage_events": events(["a"]),
                             "model_versions": identity()}, 0)
    before = sum(p.stat().st_size for p in paths)
    drops = DropLog(tmp_path)
    budget = Budget(tmp_path, budget_bytes=before // 2, min_free_bytes=0, free=lambda _: 1 << 40)
    assert budget.enforce(drops) == 1
    refs = [r for r in layout.list_segments(tmp_path)
            if "spool_drops" not in layout.segment_tables(r.path)]
    assert {base(r.name) for r in refs} == {base(name(0, pid=2))}  # it keeps its place
    assert sum(r.size for r in refs) < before // 2
    left = sorted(t for r in refs for t in layout.read_segment(r.path))
    assert left == ["model_versions", "stage_events"]
    assert drops.rows == Counter({"stage_tensors": 1})


def test_budget_leaves_batches_in_flight_alone(tmp_path):
    paths = many(tmp_path, 3, table="stage_tensors")
    drops = DropLog(tmp_path)
    budget = Budget(tmp_path, budget_bytes=1, min_free_bytes=0, free=lambda _: 1 << 40)
    budget.enforce(drops, protected={key(paths[0])})
    assert paths[0].exists() and not paths[1].exists() and not paths[2].exists()


def test_the_collectors_reserve_makes_room_for_a_manifest_on_a_full_disk(tmp_path, monkeypatch):
    paths = many(tmp_path, 2)
    reserve = Reserve(tmp_path, size=4096)
    assert reserve.ensure() and reserve.path.exists()
    assert not layout.list_segments(tmp_path)[0].name.endswith(reserve.path.name)
    real = layout.write_manifest

    def full_until_reserve_released(*args, **kwargs):  # a disk whose last bytes are gone
        if reserve.path.exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(layout, "write_manifest", full_until_reserve_released)
    store = FakeStore()
    ship = sh.Shipper(store, tmp_path, reserve=reserve)
    assert ship.ship_all() == 2
    assert not any(p.exists() for p in paths) and not reserve.path.exists()
    ship.budget = Budget(tmp_path, None)
    ship.enforce_budget()  # space is back: the reserve is held again
    assert reserve.path.exists()


def test_old_tmp_files_of_dead_writers_are_removed_and_counted(tmp_path):
    (tmp_path / "stage_events").mkdir()
    orphan = tmp_path / "stage_events" / (name(1) + ".tmp")
    fresh = tmp_path / "stage_events" / (name(2) + ".tmp")
    orphan.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - layout.ORPHAN_TMP_AGE_S - 5
    os.utime(orphan, (old, old))
    drops = DropLog(tmp_path)
    Budget(tmp_path, budget_bytes=None).enforce(drops)
    assert not orphan.exists() and fresh.exists()
    assert drops.segments["orphan_tmp"] == 1


def test_a_batch_begun_by_the_previous_shipper_is_replayed_with_its_own_token(tmp_path):
    """An upgrade after a crash: the old manifest (one table, names, token) is honoured."""
    paths = many(tmp_path, 3)
    old_token = layout.batch_token("stage_events", [p.name for p in paths])
    layout.write_manifest(tmp_path, "stage_events", old_token, [p.name for p in paths])
    store = FakeStore()
    store.kept.add(("stagelog.stage_events", old_token))  # it was inserted before the crash
    sh.Shipper(store, tmp_path).ship_all()
    assert [t for _, t, _, _ in store.sent] == [old_token]
    assert store.rows == {} and not layout.list_segments(tmp_path) and not manifests(tmp_path)


def test_under_steady_pressure_the_budget_drops_in_chunks_not_every_poll(tmp_path):
    drops = DropLog(tmp_path)
    budget = Budget(tmp_path, budget_bytes=None, min_free_bytes=0, free=lambda _: 0)
    for i in range(20):
        v1(tmp_path, "stage_tensors", tensors(f"t{i}", 1000), i)
    used = sum(r.size for r in layout.list_segments(tmp_path))
    budget.budget_bytes = used - 1  # one byte over: down to 90% of the budget at once
    assert budget.enforce(drops) == 3
    for i in range(20, 22):  # the next polls: new segments, and no drop yet
        v1(tmp_path, "stage_tensors", tensors(f"t{i}", 1000), i)
        assert budget.enforce(drops) == 0
    assert len(drops.segments) == 1 and drops.segments["budget"] == 3


def test_a_poll_that_waits_for_the_store_ships_what_was_flushed_meanwhile(tmp_path: Path):
    """A rollup holding the store lock delays a poll; the poll lists the spool after it.

    Listing first and waiting for the lock at the first insert would leave what the stages
    flushed during the wait to the next poll: a whole period later.
    """
    import threading

    store = FakeStore()
    lock = threading.Lock()
    shipper = sh.Shipper(store, tmp_path, lock=lock)
    v1(tmp_path, "stage_events", events(["r-1"]), 1)
    lock.acquire()  # the rollup thread's run
    poll = threading.Thread(target=shipper.ship_all)
    poll.start()
    time.sleep(0.2)
    v1(tmp_path, "stage_events", events(["r-2"]), 2)  # flushed while the poll waits
    lock.release()
    poll.join(10)
    assert store.ids("stage_events") == Counter({"r-1": 1, "r-2": 1})


def test_shipping_is_flagged_while_a_poll_runs_and_cleared_after(tmp_path: Path):
    """The rollup job reads ``shipping`` to let a poll go first; a failing poll clears it."""
    seen = []

    class Watching(FakeStore):
        def insert_arrow(self, table, data, settings=None):
            seen.append(shipper.shipping.is_set())
            return super().insert_arrow(table, data, settings)

    shipper = sh.Shipper(Watching(), tmp_path)
    v1(tmp_path, "stage_events", events(["r-1"]), 1)
    shipper.ship_all()
    assert seen == [True] and not shipper.shipping.is_set()
    v1(tmp_path, "stage_events", events(["r-2"]), 2)
    shipper.client = FakeStore(refuse=lambda t, d: OperationalError("down"))
    with pytest.raises(StoreUnavailable):
        shipper.ship_all()
    assert not shipper.shipping.is_set()
