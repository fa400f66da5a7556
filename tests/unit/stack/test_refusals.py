"""Building and preloading refusal_log.c (logging_backend.stack.refusals), without a server."""

import ctypes
import shutil

import pytest

from logging_backend import config
from logging_backend.stack import refusals


def test_preload_env_names_the_built_library_and_keeps_other_preloads(tmp_path, monkeypatch):
    monkeypatch.delenv(config.REFUSALS, raising=False)
    library = refusals.library_path(tmp_path)
    library.parent.mkdir()
    library.write_bytes(b"")
    stale = tmp_path / "old" / "refusal_log-000000000000.so"
    env = refusals.preload_env(tmp_path, {"LD_PRELOAD": f"/x/libjemalloc.so {stale}"})
    assert env["LD_PRELOAD"] == f"{library}:/x/libjemalloc.so"
    assert env[config.REFUSAL_LOG] == str(tmp_path / "logs" / "refusals.log")


def test_nothing_is_preloaded_when_not_built_or_switched_off(tmp_path, monkeypatch):
    monkeypatch.delenv(config.REFUSALS, raising=False)
    assert refusals.preload_env(tmp_path, {}) == {}
    library = refusals.library_path(tmp_path)
    library.parent.mkdir()
    library.write_bytes(b"")
    monkeypatch.setenv(config.REFUSALS, "off")
    assert not refusals.enabled()
    assert refusals.preload_env(tmp_path, {}) == {}


def test_without_a_compiler_the_build_says_so_and_returns_none(tmp_path, caplog):
    assert refusals.build(tmp_path, compiler=str(tmp_path / "no-cc")) is None
    assert "refusals are not recorded" in caplog.text
    assert not refusals.library_path(tmp_path).exists()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here")
def test_the_library_is_built_once_and_exports_the_two_wrappers(tmp_path):
    built = refusals.build(tmp_path)
    assert built is not None and built == refusals.library_path(tmp_path)
    mtime = built.stat().st_mtime_ns
    assert refusals.build(tmp_path) == built and built.stat().st_mtime_ns == mtime
    library = ctypes.CDLL(str(built))  # loads; the wrappers resolve Triton lazily (not called)
    for name in ("TRITONSERVER_InferenceRequestNew", "TRITONSERVER_ServerInferAsync"):
        assert hasattr(library, name)
