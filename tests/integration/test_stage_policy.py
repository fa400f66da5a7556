"""Per-stage logging policy and the flush on shutdown, on the real Triton server.

One stack of its own: a copy of the model repository whose configs set `features` to
`summary`, `mlp` to `sampled` (rate 0.5) and `logreg` to `off`, served with a flush period of
ten minutes, so that nothing reaches the spool before `stagelog down` — every row found
afterwards was written by `finalize` → `StageLog.close()`.
"""

from __future__ import annotations

import shutil
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from running import RunningStack, start_stack

from logging_backend import store
from logging_backend.stack import launcher, query
from training.generator import generate

REPO = Path(__file__).resolve().parents[2]
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
POLICIES = {
    "features": ("summary", None, "features are recomputable from the processed rows"),
    "mlp": ("sampled", "0.5", "a sample of member inputs is enough for drift checks"),
    "logreg": ("off", None, "logreg inputs are the features stage's outputs"),
}
IDS = [f"policy-{i}" for i in range(10)]


def _policy_repository(dst: Path) -> Path:
    repo = dst / "model_repository"
    shutil.copytree(REPO / "model_repository", repo, ignore=shutil.ignore_patterns("__pycache__"))
    for model, (policy, rate, reason) in POLICIES.items():
        lines = [
            f'parameters: {{ key: "logging_policy" value: {{ string_value: "{policy}" }} }}',
            f'parameters: {{ key: "logging_reason" value: {{ string_value: "{reason}" }} }}',
        ]
        if rate:
            lines.append(
                f'parameters: {{ key: "sample_rate" value: {{ string_value: "{rate}" }} }}'
            )
        with open(repo / model / "config.pbtxt", "a") as cfg:
            cfg.write("\n" + "\n".join(lines) + "\n")
    return repo


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict]]:
    """Serve IDS (2 rows each) with a 10-minute flush period, stop the stack, open its store."""
    tmp = tmp_path_factory.mktemp("stagelog-policy")
    repo = _policy_repository(tmp)
    home = tmp / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("STAGELOG_FLUSH_MS", "600000")
    running: RunningStack | None = None
    seen: dict = {}
    try:
        running = start_stack(home, model_repository=repo)
        pool = [item.event for item in generate(2 * len(IDS), seed=11)]
        for i, request_id in enumerate(IDS):
            running.score(pool[2 * i : 2 * i + 2], request_id=request_id)
        time.sleep(1.0)  # several collector intervals
        result = query.execute(
            running.settings,
            "SELECT count() FROM stagelog.stage_events WHERE request_id IN {ids:Array(String)}",
            {"ids": IDS},
            "TabSeparated",
        )
        seen["before_down"] = int(result.decode().strip())
    finally:
        mp.undo()
        if running is not None:
            launcher.down(running.settings)
    client = store.connect(running.settings.dsn)
    try:
        yield client, seen
    finally:
        store.close_all()


def _rows(client, sql: str) -> list[tuple]:
    return client.query(sql, parameters={"ids": IDS}).result_rows


def test_nothing_is_spooled_before_down_and_everything_after(finished) -> None:
    client, seen = finished
    assert seen["before_down"] == 0  # the buffers held every record until finalize
    found = _rows(
        client,
        "SELECT stage, count(), uniqExact(request_id) FROM stagelog.stage_events "
        "WHERE request_id IN {ids:Array(String)} GROUP BY stage",
    )
    assert sorted(found) == sorted((s, len(IDS), len(IDS)) for s in STAGES)


def test_every_deviation_from_full_is_written_with_its_reason(finished) -> None:
    client, _ = finished
    found = _rows(
        client,
        "SELECT stage, policy, sample_rate, reason FROM stagelog.logging_policy "
        "WHERE policy IN ('sampled', 'summary', 'off') ORDER BY stage",
    )
    expected = sorted(
        (model, policy, float(rate or 1.0), reason)
        for model, (policy, rate, reason) in POLICIES.items()
    )
    # mlp has two loaded versions (1 and 2): one row per model load
    assert sorted(set(found)) == expected
    assert [r[0] for r in found].count("mlp") == 2


def test_summary_stage_stores_statistics_instead_of_values(finished) -> None:
    client, _ = finished
    found = _rows(
        client,
        "SELECT name, policy, length(values_f64), length(values_str), summary "
        "FROM stagelog.stage_tensors "
        "WHERE stage = 'features' AND request_id IN {ids:Array(String)}",
    )
    assert {r[0] for r in found} >= {"PROCESSED", "FEATURES", "card_state.mean_amount_eur"}
    for name, policy, n_f64, n_str, summary in found:
        assert policy == "summary" and n_f64 == 0 and n_str == 0, name
        assert summary["count"] > 0 and "nan_count" in summary, name
    features = [r[4] for r in found if r[0] == "FEATURES"]
    assert len(features) == len(IDS)
    assert all(s["count"] == 2 * 45 and s["min"] <= s["mean"] <= s["max"] for s in features)


def test_sampled_stage_keeps_tensors_of_the_hashed_fraction_and_every_event(finished) -> None:
    client, _ = finished
    kept = {
        r[0]
        for r in _rows(
            client,
            "SELECT DISTINCT request_id FROM stagelog.stage_tensors "
            "WHERE stage = 'mlp' AND request_id IN {ids:Array(String)}",
        )
    }
    expected = {i for i in IDS if zlib.crc32(i.encode()) < 0.5 * 2**32}
    assert 0 < len(expected) < len(IDS)  # the ids exercise both sides
    assert kept == expected
    events = dict(
        _rows(
            client,
            "SELECT request_id, attributes['tensors'] FROM stagelog.stage_events "
            "WHERE stage = 'mlp' AND request_id IN {ids:Array(String)}",
        )
    )
    assert events == {i: ("kept" if i in expected else "sampled_out") for i in IDS}
    n_preds = _rows(
        client,
        "SELECT count() FROM stagelog.predictions "
        "WHERE model = 'mlp' AND request_id IN {ids:Array(String)}",
    )[0][0]
    assert n_preds == 2 * len(IDS)


def test_off_stage_logs_no_tensors_but_events_and_predictions(finished) -> None:
    client, _ = finished
    counts = _rows(
        client,
        "SELECT (SELECT count() FROM stagelog.stage_tensors WHERE stage = 'logreg' "
        "AND request_id IN {ids:Array(String)}), "
        "(SELECT count() FROM stagelog.stage_events WHERE stage = 'logreg' "
        "AND request_id IN {ids:Array(String)}), "
        "(SELECT count() FROM stagelog.predictions WHERE model = 'logreg' "
        "AND request_id IN {ids:Array(String)})",
    )
    assert counts == [(0, len(IDS), 2 * len(IDS))]
