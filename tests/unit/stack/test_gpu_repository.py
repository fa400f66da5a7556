"""The GPU variant of the model repository (config generation for `stagelog up --gpu`)."""

from __future__ import annotations

import re

import pytest

from logging_backend.config import REPO_ROOT
from logging_backend.errors import ConfigError
from logging_backend.stack.gpu_repository import (
    MEMBERS,
    ensemble_without_member_ids,
    member_config_for_gpu,
    write_gpu_repository,
)

SRC = REPO_ROOT / "model_repository"


def _step(text, model):
    start = text.index(f'model_name: "{model}"')
    end = text.find("model_name:", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_members_go_to_the_gpu_and_the_rest_is_unchanged(tmp_path):
    dst = write_gpu_repository(SRC, tmp_path / "gpu_repo")
    for member in MEMBERS:
        text = (dst / member / "config.pbtxt").read_text()
        assert "KIND_GPU" in text and "KIND_CPU" not in text
        assert len(re.findall(r"instance_group", text)) == 1
        assert (dst / member / "1").is_symlink()
        assert (dst / member / "1" / "model.npz").is_file()
    for other in ("preprocess", "features", "aggregate", "pipeline"):
        generated = (dst / other / "config.pbtxt").read_text()
        assert generated == (SRC / other / "config.pbtxt").read_text()
    # the committed repository stays CPU-only
    assert all("KIND_GPU" not in (SRC / m / "config.pbtxt").read_text() for m in MEMBERS)


def test_member_request_ids_can_be_left_out_of_the_ensemble(tmp_path):
    dst = write_gpu_repository(SRC, tmp_path / "gpu_repo", map_request_id=False)
    text = (dst / "pipeline" / "config.pbtxt").read_text()
    for member in MEMBERS:
        step = _step(text, member)
        assert '"REQUEST_ID"' not in step and 'key: "FEATURES"' in step
    assert 'input_map { key: "REQUEST_ID" value: "REQUEST_ID" }' in _step(text, "aggregate")
    assert 'input_map { key: "REQUEST_ID" value: "REQUEST_ID" }' in _step(text, "features")


def test_member_config_without_instance_group_gets_one():
    text = member_config_for_gpu('name: "m"\nbackend: "python"\n', count=2, gpus=(0, 1))
    assert text.endswith("instance_group [ { kind: KIND_GPU count: 2 gpus: [ 0, 1 ] } ]\n")


def test_ensemble_edit_touches_only_members():
    text = ('step [ { model_name: "features" input_map { key: "REQUEST_ID" value: "REQUEST_ID" } },'
            ' { model_name: "mlp" input_map { key: "REQUEST_ID" value: "REQUEST_ID" } } ]')
    out = ensemble_without_member_ids(text)
    assert out.count('"REQUEST_ID"') == 2 and '"mlp" }' in out


def test_refuses_to_overwrite_the_source_or_miss_a_member(tmp_path):
    with pytest.raises(ConfigError, match="must not overwrite"):
        write_gpu_repository(SRC, SRC)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.pbtxt for mlp"):
        write_gpu_repository(tmp_path / "empty", tmp_path / "out")
