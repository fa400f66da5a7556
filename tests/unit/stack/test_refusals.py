"""Building and preloading refusal_log.c (logging_backend.stack.refusals), without a server."""

import ctypes
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from logging_backend import config
from logging_backend.collector import triton_watch
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
    assert refusals.preload_env(tmp_path, {})  # built and wanted
    monkeypatch.setenv(config.REFUSALS, "off")
    settings = config.load(home=tmp_path)
    assert not refusals.enabled(settings)
    assert refusals.preload_env(tmp_path, {}, refusals.enabled(settings)) == {}


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


FAKE = Path(__file__).with_name("refusal_fake")


@pytest.fixture(scope="module")
def frontend(tmp_path_factory):
    """A fake frontend linked against a fake libtritonserver, and the built library."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler here")
    out = tmp_path_factory.mktemp("fake")
    for command in (
        ["cc", "-O2", "-shared", "-fPIC", "-o", out / "libfake.so",
         FAKE / "libtritonserver_fake.c"],
        ["cc", "-O2", "-o", out / "frontend", FAKE / "frontend.c", f"-L{out}", "-lfake",
         f"-Wl,-rpath,{out}", "-lpthread"],
    ):
        subprocess.run([str(c) for c in command], check=True, capture_output=True)
    return out / "frontend", refusals.build(out)


def _run(frontend, tmp_path, per_thread, **env):
    binary, library = frontend
    log = tmp_path / "refusals.log"
    full = {"LD_PRELOAD": f"{library}:/nonexistent/other.so", config.REFUSAL_LOG: str(log),
            "PATH": "/usr/bin:/bin", **env}
    done = subprocess.run([str(binary), "mod\tel", str(per_thread)], env=full, check=True,
                          capture_output=True, text=True)
    return log, done.stdout


def test_a_refused_request_is_one_line_the_collector_reads_back(frontend, tmp_path):
    log, stdout = _run(frontend, tmp_path, 25, FAKE_REFUSE="1", FAKE_ID="r-1")
    assert "LD_PRELOAD=/nonexistent/other.so" in stdout  # took itself out, kept the rest
    lines = log.read_text().splitlines()
    assert len(lines) == 4 * 25 + 1
    rows = triton_watch.parse_refusal_lines(list(enumerate(lines)), 2026, str(log), "h")
    assert len(rows) == len(lines)
    assert {r["request_id"] for r in rows} == {"r-1"}
    models = [r["model"] for r in rows]
    assert models.count("mod\tel") == 100 and models.count("") == 1  # the unknown request
    assert rows[0]["message"] == "Invalid argument: version 2: unexpected shape\tfor 'RAW'\nend"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_served_request_writes_nothing(frontend, tmp_path):
    log, _ = _run(frontend, tmp_path, 1000)
    assert not log.exists()


def test_past_its_size_limit_the_log_becomes_dot_1_and_a_new_one_starts(frontend, tmp_path):
    log, _ = _run(frontend, tmp_path, 50, FAKE_REFUSE="1",
                  **{config.REFUSAL_LOG_MAX_BYTES: "4000"})
    rotated = log.with_name(log.name + ".1")
    assert rotated.exists() and rotated.stat().st_size >= 4000
    assert log.stat().st_size < 4000 + 200  # the new file, past the limit by one line at most
    # Older rotations are replaced (bounded disk); the last two files hold the newest lines.
    kept = rotated.read_text().splitlines() + log.read_text().splitlines()
    assert all(line.startswith("E") and line.count("\t") == 4 for line in kept)
