"""bench.overhead pieces that need no server: policy repository, schedule, summary, arguments."""

from __future__ import annotations

import json
import lzma
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import overhead
from logging_backend.capture.records import Policy

REPO = overhead.launcher.DEFAULT_MODEL_REPOSITORY


def _parameters(config_text: str) -> dict[str, str]:
    """The string parameters of a config.pbtxt, as Triton hands them to initialize()."""
    params: dict[str, str] = {}
    for line in config_text.splitlines():
        if line.startswith("parameters:"):
            key = line.split('key: "', 1)[1].split('"', 1)[0]
            value = line.split('string_value: "', 1)[1].split('"', 1)[0]
            params[key] = value
    return params


def test_policy_repository_sets_every_stage_policy_and_keeps_the_rest(tmp_path: Path) -> None:
    copy = overhead.policy_repository(REPO, tmp_path / "repo", "sampled", 0.25)
    for stage in overhead.POLICY_STAGES:
        text = (copy / stage / "config.pbtxt").read_text()
        params = _parameters(text)
        config = {"parameters": {k: {"string_value": v} for k, v in params.items()}}
        policy = Policy.from_model_config(config, stage)
        assert (policy.mode, policy.sample_rate) == ("sampled", 0.25)
        assert policy.reason
        original = _parameters((REPO / stage / "config.pbtxt").read_text())
        for key, value in original.items():
            if key not in ("logging_policy", "sample_rate", "logging_reason"):
                assert params[key] == value
    assert (copy / "pipeline" / "config.pbtxt").read_text() == (
        REPO / "pipeline" / "config.pbtxt"
    ).read_text()
    again = overhead.policy_repository(copy, tmp_path / "again", "summary", 0.5)
    params = _parameters((again / "features" / "config.pbtxt").read_text())
    assert params["logging_policy"] == "summary" and "sample_rate" not in params


def test_policy_repository_refuses_a_repository_without_the_stages(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(FileNotFoundError, match="preprocess"):
        overhead.policy_repository(tmp_path / "src", tmp_path / "dst", "summary", 1.0)


def test_trace_args_trace_every_request_with_tensors(tmp_path: Path) -> None:
    args = overhead.trace_args(tmp_path, 50)
    assert "--trace-config=level=TENSORS" in args
    assert "--trace-config=rate=1" in args
    assert f"--trace-config=triton,file={tmp_path / 'trace.json'}" in args
    assert "--trace-config=triton,log-frequency=50" in args


def test_schedule_rotates_modes_and_covers_every_window() -> None:
    order = overhead.schedule(["off", "full", "trace"], [8, 32], 3)
    assert len(order) == 3 * 2 * 3
    assert len(set(order)) == len(order)
    firsts = [order[i][0] for i in range(0, len(order), 6)]
    assert firsts == ["off", "full", "trace"]


def _run(mode: str, rps: float, p50: float, lost: int | None = None) -> overhead.Run:
    return overhead.Run(
        mode=mode, concurrency=8, repetition=0, throughput_rps=rps, p50_ms=p50, p99_ms=2 * p50,
        requests=int(rps), errors=0, server_cpu_ms_per_req=1.0, collector_cpu_ms_per_req=0.1,
        client_cpu_ms_per_req=0.1, sent_ok=int(rps), rows_lost=lost,
    )  # fmt: skip


def test_summary_is_medians_and_ratios_to_off() -> None:
    runs = [
        _run("off", 100, 10), _run("off", 120, 12), _run("off", 80, 8),
        _run("full", 90, 11, lost=0), _run("full", 96, 12, lost=0), _run("full", 10, 99, lost=2),
    ]  # fmt: skip
    rows = {row["mode"]: row for row in overhead.summarize(runs, ["off", "full"], [8])}
    assert rows["off"]["throughput_rps"] == 100 and rows["off"]["throughput_rps_vs_off"] == 1
    assert rows["full"]["throughput_rps"] == 90
    assert rows["full"]["throughput_rps_vs_off"] == pytest.approx(0.9)
    assert rows["full"]["p50_ms_vs_off"] == pytest.approx(1.2)
    assert rows["full"]["rows_lost"] == 2
    assert math.isnan(rows["off"]["rows_lost"])


def test_arguments_are_checked() -> None:
    with pytest.raises(SystemExit):
        overhead.parse_args(["--modes", "full,trace"])  # no baseline
    with pytest.raises(SystemExit):
        overhead.parse_args(["--modes", "off,loud"])
    with pytest.raises(SystemExit):
        overhead.parse_args(["--concurrency", "8,many"])
    args = overhead.parse_args(["--concurrency", "8,32", "--modes", "off,full"])
    assert args.concurrency_list == [8, 32] and args.mode_list == ["off", "full"]


def test_a_summary_round_trips_through_json() -> None:
    rows = overhead.summarize([_run("off", 100, 10)], ["off"], [8])
    assert json.loads(json.dumps(rows, allow_nan=True))[0]["mode"] == "off"


def test_windows_with_errors_or_a_dead_server_do_not_count() -> None:
    dead = _run("off", 0.0, float("nan"))
    dead.server_died = True
    failed = _run("off", 50, 5)
    failed.errors = 3
    rows = overhead.summarize([_run("off", 100, 10), dead, failed], ["off"], [8])
    assert rows[0]["throughput_rps"] == 100
    assert (rows[0]["reps"], rows[0]["excluded"]) == (1, 2)


def test_render_survives_a_mode_without_a_valid_window() -> None:
    dead = _run("trace", 0.0, float("nan"))
    dead.server_died = True
    runs = [_run("off", 100, 10), _run("full", 90, 11, lost=0), dead]
    args = overhead.parse_args(["--modes", "off,full,trace", "--repetitions", "1"])
    summary = overhead.summarize(runs, args.mode_list, args.concurrency_list)
    text = overhead.render(runs, summary, [], [("trace", 8, 0, "Signal (11) received.")], args)
    assert "CRASH: trace" in text and "window excluded" in text
    assert "full logging / Triton trace (concurrency 8): throughput -x" in text


def test_report_reprints_a_json_run_with_paired_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import asdict

    runs = [_run("off", 100, 10), _run("full", 80, 12, lost=0)]
    second = [_run("off", 50, 10), _run("full", 45, 12, lost=0)]
    for run in second:
        run.repetition = 1
    doc = {
        "argv": ["--modes", "off,full", "--repetitions", "2"],
        "runs": [asdict(r) for r in runs + second],
        "summary": [],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert overhead.main(["--report", str(path)]) == 0
    out = capsys.readouterr().out
    full = next(line for line in out.splitlines() if line.startswith("full "))
    assert " 0.850 " in full  # paired: median of 0.8 and 0.9
    xz = tmp_path / "run.json.xz"  # the kept run records are xz-compressed
    xz.write_bytes(lzma.compress(path.read_bytes()))
    assert overhead.main(["--report", str(xz)]) == 0
    assert capsys.readouterr().out.replace(str(xz), str(path)) == out


def test_summary_pools_freshness_and_subtracts_the_servers_cpu_of_off() -> None:
    off = _run("off", 100, 10)
    full = [_run("full", 90, 11, lost=0), _run("full", 95, 12, lost=0)]
    full[0].freshness_s, full[1].freshness_s = [0.5, 1.5, 2.5], [1.0]  # every request, stored_at
    full[0].poll_freshness_s, full[0].probes = [1.0, 2.0], 3  # one probe never seen
    full[1].poll_freshness_s, full[1].probes = [3.0], 1
    full[0].server_cpu_ms_per_req = full[1].server_cpu_ms_per_req = off.server_cpu_ms_per_req + 0.4
    rows = {row["mode"]: row for row in overhead.summarize([off, *full], ["off", "full"], [8], 8)}
    assert rows["full"]["fresh_p50_s"] == pytest.approx(1.25) and rows["full"]["fresh_n"] == 4
    assert rows["full"]["poll_p50_s"] == pytest.approx(2.0)
    assert rows["full"]["poll_n"] == 3 and rows["full"]["poll_unseen"] == 1
    assert rows["full"]["logging_cpu_ms_per_req"] == pytest.approx(0.4)
    assert rows["full"]["logging_cpu_us_per_event"] == pytest.approx(50.0)


def test_a_report_of_an_older_file_reads_its_freshness_as_polled(tmp_path: Path, capsys) -> None:
    """Files written before the stored_at figure held polled freshness in ``freshness_s``."""
    off, full = _run("off", 100, 10), _run("full", 90, 11, lost=0)
    full.freshness_s, full.probes = [1.0, 2.0], 2
    old = [{k: v for k, v in asdict(r).items() if k != "poll_freshness_s"} for r in (off, full)]
    doc = {"argv": ["--modes", "off,full", "--repetitions", "1"], "runs": old, "summary": []}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    runs = [overhead.Run(**overhead._upgrade(r)) for r in doc["runs"]]
    assert runs[1].poll_freshness_s == [1.0, 2.0] and runs[1].freshness_s == []
    assert overhead.main(["--report", str(path)]) == 0


def test_the_summary_says_what_the_trace_target_asks_of_full_over_off(tmp_path: Path, capsys):
    """1.25x a trace that costs 16 % is more than logging off's throughput: the report says so."""
    runs = [_run("off", 100, 10), _run("full", 88, 11, lost=0), _run("trace", 84, 12)]
    doc = {"argv": ["--modes", "off,full,trace", "--repetitions", "1"],
           "runs": [asdict(r) for r in runs], "summary": []}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert overhead.main(["--report", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith("Triton trace / off"))
    assert "0.840x" in line and "full / off >= 1.050" in line and "or more" in line
