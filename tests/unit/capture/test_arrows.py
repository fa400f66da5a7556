"""The ensemble's arrows, read from the model repository's configs."""

from __future__ import annotations

from pathlib import Path

from logging_backend.capture import arrows

REPO = Path(__file__).resolve().parents[3] / "model_repository"

ENSEMBLE = """
name: "e"
platform: "ensemble"   # a comment: model_name: "ignored"
ensemble_scheduling {
  step [
    { model_name: "a" model_version: 1
      input_map { key: "IN" value: "IN" }
      output_map { key: "OUT" value: "t1" } },
    { model_name: "b" model_version: 1
      input_map { value: "t1" key: "X" }
      output_map { key: "Y" value: "OUT" } }
  ]
}
"""


def _repo(tmp_path: Path, producer_params: str = "") -> Path:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.pbtxt").write_text(ENSEMBLE)
    for model in ("a", "b"):
        (tmp_path / model).mkdir()
        (tmp_path / model / "config.pbtxt").write_text(
            f'name: "{model}"\nbackend: "python"\n' + (producer_params if model == "a" else "")
        )
    return tmp_path


def test_the_pipeline_stores_every_inner_arrow_once():
    features = arrows.plan(REPO, "features")
    assert features.sources["PROCESSED"] == ("preprocess", "PROCESSED")
    assert features.outputs == {"FEATURES"}
    for member in ("mlp", "forest", "logreg"):
        plan = arrows.plan(REPO, member)
        assert plan.sources["FEATURES"] == ("features", "FEATURES")
        assert plan.outputs == {"PROBS"}
    aggregate = arrows.plan(REPO, "aggregate")
    assert aggregate.sources["MLP_PROBS"] == ("mlp", "PROBS")
    assert aggregate.outputs == set()  # the ensemble's outputs: stored byte-exact
    preprocess = arrows.plan(REPO, "preprocess")
    assert "RAW" not in preprocess.sources  # the ensemble's input: stored byte-exact
    assert {"PROCESSED", "REQUEST_ID"} <= preprocess.outputs


def test_steps_parse_with_either_key_order_and_comments(tmp_path):
    steps = arrows.parse_steps(ENSEMBLE)
    assert [(s.model, s.inputs, s.outputs) for s in steps] == [
        ("a", {"IN": "IN"}, {"OUT": "t1"}),
        ("b", {"X": "t1"}, {"Y": "OUT"}),
    ]
    assert arrows.parse_steps('name: "m"\nbackend: "python"') is None


def test_full_copies_when_asked_or_when_the_producer_keeps_no_values(tmp_path):
    repo = _repo(tmp_path)
    assert arrows.plan(repo, "b").sources == {"X": ("a", "OUT")}
    assert arrows.plan(repo, "a").outputs == {"OUT"}
    asked = arrows.plan(repo, "b", mode="full")
    assert asked.sources == {} and "logging_arrows=full" in asked.full_copies["X"]
    assert "kept as full copies" in arrows.describe(asked)


def test_a_sampled_producer_means_full_copies(tmp_path):
    params = 'parameters { key: "logging_policy" value: { string_value: "sampled" } }\n'
    plan = arrows.plan(_repo(tmp_path, params), "b")
    assert plan.sources == {} and "logs sampled" in plan.full_copies["X"]


def test_a_sampled_consumer_refers_to_a_producer_that_samples_as_many_requests(tmp_path):
    params = (
        'parameters { key: "logging_policy" value: { string_value: "sampled" } }\n'
        'parameters { key: "sample_rate" value: { string_value: "0.5" } }\n'
    )
    repo = _repo(tmp_path, params)
    assert arrows.plan(repo, "b", policy="sampled", sample_rate=0.5).sources == {"X": ("a", "OUT")}
    assert arrows.plan(repo, "b", policy="sampled", sample_rate=0.1).sources == {"X": ("a", "OUT")}
    more = arrows.plan(repo, "b", policy="sampled", sample_rate=0.9)
    assert more.sources == {} and "samples fewer" in more.full_copies["X"]
    assert arrows.plan(repo, "b").sources == {}  # a full consumer keeps requests a is missing


def test_no_repository_no_arrows():
    assert arrows.plan(None, "m").sources == {}
