"""Soak: mixed load for minutes with faults on a schedule, then what was lost or duplicated.

Starts one supervised stack (temporary STAGELOG_HOME, free ports) and runs, for ``--duration``
seconds:

- ``--clients`` threads scoring valid events (1 to 4 rows a request, request ids
  ``soak-<tag>-<client>-<n>``), each answered request reported back to ``feedback`` as a
  label one time in four;
- bad rows among them (a lone surrogate in a field, a row nested 5,000 deep, a 100 KB request
  id, a DETAIL nested 2,000 deep), each of which must be refused with INVALID_ARG;
- faults every ``--fault-every`` seconds, in turn: ``kill -9`` of a stub (forest, mlp,
  preprocess, ... in turn), ``kill -9`` of the collector, the store paused (the collector
  SIGSTOPped for 20 s, then SIGCONT), a burst of bad rows. Only pids of this stack are touched.

Every ``--sample-every`` seconds one line of JSON goes to the output: requests answered and
failed so far, bad rows refused, restarts (service events), RSS of tritonserver with its stubs,
of the collector and of the supervisor, and the spool's size. At the end the stack is drained
and stopped, and the store is asked, per answered request, for its stage_events rows: rows
lost (missing) and duplicated, next to what ``stub_rows_lost`` counted for the killed stubs.

Usage::

    python -m bench.soak --duration 600 --out bench/results/soak.txt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from bench.machine import cpu_model
from clients.feedback import FeedbackReport, send_reports
from clients.score import score_batch
from logging_backend import config
from logging_backend.stack import launcher, query, service_state, stages
from training.generator import generate

STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
STUB_TARGETS = ("forest", "mlp", "preprocess", "logreg", "features", "aggregate")
FAULTS = ("stub_kill", "collector_kill", "store_pause", "bad_rows")


class Counters:
    """Thread-safe tallies of the load."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answered: list[str] = []
        self.failed = 0
        self.failure_kinds: dict[str, int] = {}
        self.bad_refused = 0
        self.bad_wrong = 0
        self.bad_wrong_kinds: dict[str, int] = {}
        self.feedback_ok = 0
        self.feedback_failed = 0

    def fail(self, exc: Exception) -> None:
        """Count a failed valid request by the first words of its error."""
        kind = str(exc).split("]", 1)[-1].strip()[:70]
        with self.lock:
            self.failed += 1
            self.failure_kinds[kind] = self.failure_kinds.get(kind, 0) + 1


def _rss(pid: int | None, children: bool = False) -> int:
    if not pid:
        return 0
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        if children:
            total += sum(c.memory_info().rss for c in proc.children(recursive=True))
        return total
    except psutil.Error:
        return 0


def _spool(settings: config.Settings) -> tuple[int, int]:
    size, count = 0, 0
    for path in settings.spool_dir.rglob("*.arrow"):
        try:
            size += path.stat().st_size
            count += 1
        except OSError:
            continue
    return size, count


BAD_ROWS = (
    ("surrogate", lambda e: [json.dumps(dict(e, merchant_id="m\ud800"))]),
    ("nested", lambda e: ['{"event_id":"n","amount":1,"x":' + "[" * 5000 + "]" * 5000 + "}"]),
)


def _client_loop(
    url: str, pool: list[dict], worker: int, tag: str, stop: threading.Event, counts: Counters,
    bad_every: int,
) -> None:
    client = grpcclient.InferenceServerClient(url)
    rng = random.Random(worker)
    n = 0
    while not stop.is_set():
        n += 1
        if bad_every and n % bad_every == 0:
            _send_bad(client, pool[n % len(pool)], rng, counts)
            continue
        rows = rng.randint(1, 4)
        events = [pool[(n * 5 + i) % len(pool)] for i in range(rows)]
        rid = f"soak-{tag}-{worker}-{n}"
        try:
            score_batch(client, events, rid, timeout_s=30)
        except InferenceServerException as exc:
            counts.fail(exc)
            time.sleep(0.05)
            continue
        with counts.lock:
            counts.answered.append(rid)
        if n % 4 == 0:
            try:
                send_reports(client, [FeedbackReport(rid, 0, "label", "legit")])
                counts.feedback_ok += 1
            except InferenceServerException:
                counts.feedback_failed += 1
    client.close()


def _send_detail(client: Any, detail: str) -> None:
    """A feedback report whose DETAIL is ``detail`` as given (not re-encoded)."""
    import numpy as np  # noqa: PLC0415

    def strings(name: str, value: str) -> Any:
        tensor = grpcclient.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[value.encode("utf-8")]], dtype=np.object_))
        return tensor

    row = grpcclient.InferInput("ROW", [1, 1], "INT32")
    row.set_data_from_numpy(np.zeros((1, 1), dtype=np.int32))
    client.infer("feedback", [strings("REQUEST_ID", "soak-bad"), row, strings("KIND", "action"),
                              strings("VALUE", "approve"), strings("DETAIL", detail)])


def _send_bad(client: Any, event: dict, rng: random.Random, counts: Counters) -> None:
    kind = rng.choice(("surrogate", "nested", "long_id", "detail"))
    try:
        if kind == "long_id":
            score_batch(client, [event], "x" * 100_000)
        elif kind == "detail":
            _send_detail(client, '{"a":' + "[" * 2000 + "]" * 2000 + "}")
        else:
            score_batch(client, dict(BAD_ROWS)[kind](event), f"soak-bad-{uuid.uuid4().hex[:8]}")
    except InferenceServerException as exc:
        _bad_outcome(exc, counts)
        return
    with counts.lock:
        counts.bad_wrong += 1  # a bad row was served: should not happen


def _bad_outcome(exc: InferenceServerException, counts: Counters) -> None:
    with counts.lock:
        if "INVALID_ARG" in str(exc.status()):
            counts.bad_refused += 1
        else:
            counts.bad_wrong += 1
            kind = f"{exc.status()}: {str(exc.message())[:70]}"
            counts.bad_wrong_kinds[kind] = counts.bad_wrong_kinds.get(kind, 0) + 1


def _fault(name: str, settings: config.Settings, round_no: int, log: list[dict]) -> None:
    stamp = time.time()
    entry: dict[str, Any] = {"t": round(stamp, 3), "fault": name}
    if name == "stub_kill":
        server = launcher.running_pid(settings, launcher.TRITON)
        target = STUB_TARGETS[round_no % len(STUB_TARGETS)]
        stubs = [s for s in stages.stubs_of(server or 0) if s.model == target]
        if stubs:
            os.kill(stubs[0].pid, signal.SIGKILL)
            entry.update(model=target, pid=stubs[0].pid)
    elif name == "collector_kill":
        pid = launcher.running_pid(settings, launcher.COLLECTOR)
        if pid:
            os.kill(pid, signal.SIGKILL)
            entry["pid"] = pid
    elif name == "store_pause":
        pid = launcher.running_pid(settings, launcher.COLLECTOR)
        if pid:
            os.kill(pid, signal.SIGSTOP)
            entry["pid"] = pid
            threading.Timer(20.0, _resume, args=(pid,)).start()
    log.append(entry)
    threading.Thread(target=_time_to_ready, args=(settings, entry), daemon=True).start()


def _time_to_ready(settings: config.Settings, entry: dict[str, Any], limit: float = 120) -> None:
    """Set ``entry["ready_after_s"]``: seconds until the part is back and the stack ready.

    A killed part is back once the supervisor recorded it ``restarted`` (after the fault);
    a paused store has nothing restarted: ready means status says ready.
    """
    started, wall = time.monotonic(), entry["t"]
    component = {"stub_kill": "model", "collector_kill": "collector"}.get(entry["fault"])
    while time.monotonic() - started < limit:
        try:
            back = component is None or any(
                e["component"] == component and e["event"] == "restarted"
                and e.get("model", "") == entry.get("model", "")
                and datetime.fromisoformat(e["ts"]).timestamp() >= wall
                for e in service_state.recent_events(settings, limit=50)
            )
            status = launcher.status(settings)
            if back and status.ready and not status.down:
                entry["ready_after_s"] = round(time.monotonic() - started, 1)
                return
        except Exception:  # noqa: S110 - a status read mid-restart: ask again
            pass
        time.sleep(0.5)
    entry["ready_after_s"] = None


def _resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _store_counts(settings: config.Settings, tag: str) -> dict[str, dict[str, int]]:
    data = json.loads(query.execute(
        settings,
        "SELECT request_id, stage, count() FROM stagelog.stage_events "
        "WHERE startsWith(request_id, {p:String}) GROUP BY request_id, stage",
        {"p": f"soak-{tag}-"}, "JSONCompact",
    ))["data"]
    out: dict[str, dict[str, int]] = {}
    for rid, stage, count in data:
        out.setdefault(rid, {})[stage] = int(count)
    return out


def _scalar(settings: config.Settings, sql: str) -> Any:
    return json.loads(query.execute(settings, sql, {}, "JSONCompact"))["data"][0][0]


def run(args: argparse.Namespace, out: Any) -> dict[str, Any]:
    """Run the soak; write samples and the summary to ``out``; return the summary."""
    tag = uuid.uuid4().hex[:6]
    home = Path(tempfile.mkdtemp(prefix="stagelog-soak-"))
    grpc_port, http_port, metrics_port = launcher.free_ports(3)
    settings = config.load(home=home, grpc_port=grpc_port, http_port=http_port,
                           metrics_port=metrics_port, logging=True)
    pool = [item.event for item in generate(256, seed=1414)]
    counts = Counters()
    faults: list[dict] = []
    print(json.dumps({"soak": tag, "started": datetime.now(timezone.utc).isoformat(),
                      "duration_s": args.duration, "clients": args.clients,
                      "fault_every_s": args.fault_every, "cpu": cpu_model(),
                      "cores": os.cpu_count(), "commit": _commit()}), file=out, flush=True)
    started = time.monotonic()
    launcher.up(settings, timeout=300)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client_loop, daemon=True,
                         args=(f"127.0.0.1:{grpc_port}", pool, w, tag, stop, counts,
                               args.bad_every))
        for w in range(args.clients)
    ]
    try:
        for thread in threads:
            thread.start()
        t0 = time.monotonic()
        next_fault, next_sample, round_no = t0 + args.fault_every, t0, 0
        while time.monotonic() - t0 < args.duration:
            now = time.monotonic()
            if now >= next_fault:
                name = FAULTS[round_no % len(FAULTS)]
                if name == "bad_rows":
                    for _ in range(20):
                        _send_bad(grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}"),
                                  pool[round_no], random.Random(round_no), counts)
                    faults.append({"t": round(time.time(), 1), "fault": name, "rows": 20})
                else:
                    _fault(name, settings, round_no // len(FAULTS), faults)
                round_no += 1
                next_fault += args.fault_every
            if now >= next_sample:
                _sample(settings, counts, t0, out)
                next_sample += args.sample_every
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(60)
        _sample(settings, counts, t0, out)
        # Drain: the stages' last flush, then until the spool is empty (or 120 s).
        drain_deadline = time.monotonic() + 120
        while _spool(settings)[1] and time.monotonic() < drain_deadline:
            time.sleep(1)
        time.sleep(3)
        stored = _store_counts(settings, tag)
        lost_rows = dup_rows = lost_requests = 0
        lost_by_stage: dict[str, int] = {}
        for rid in counts.answered:
            have = stored.get(rid, {})
            missing = [s for s in STAGES if have.get(s, 0) == 0]
            lost_rows += len(missing)
            lost_requests += bool(missing)
            for stage in missing:
                lost_by_stage[stage] = lost_by_stage.get(stage, 0) + 1
            dup_rows += sum(max(0, have.get(s, 0) - 1) for s in STAGES)
        events = json.loads(query.execute(
            settings, "SELECT component, model, event, count() FROM stagelog.service_events "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", {}, "JSONCompact"))["data"]
        counted_lost = _scalar(settings, "SELECT sum(records_lost) FROM stagelog.stub_rows_lost")
        triton_failures = _scalar(
            settings, "SELECT count() FROM stagelog.triton_metrics WHERE metric = "
            "'nv_inference_request_failure' AND value > 0")
        server_logs = _scalar(settings, "SELECT count() FROM stagelog.server_logs")
        summary = {
            "summary": tag,
            "wall_s": round(time.monotonic() - started, 1),
            "requests_answered": len(counts.answered),
            "requests_failed": counts.failed,
            "failure_kinds": counts.failure_kinds,
            "bad_rows_refused_invalid_arg": counts.bad_refused,
            "bad_rows_served_or_wrong_code": counts.bad_wrong,
            "bad_rows_wrong_kinds": counts.bad_wrong_kinds,
            "feedback_ok": counts.feedback_ok,
            "feedback_failed": counts.feedback_failed,
            "faults": faults,
            "service_events": events,
            "stage_rows_lost_for_answered": lost_rows,
            "stage_rows_lost_by_stage": lost_by_stage,
            "answered_requests_with_a_missing_row": lost_requests,
            "stage_rows_duplicated_for_answered": dup_rows,
            "records_lost_counted_by_stub_rows_lost": counted_lost,
            "triton_failure_samples_nonzero": triton_failures,
            "server_logs_rows": server_logs,
        }
        print(json.dumps(summary), file=out, flush=True)
        return summary
    finally:
        stop.set()
        launcher.down(settings)


def _sample(settings: config.Settings, counts: Counters, t0: float, out: Any) -> None:
    spool_bytes, spool_segments = _spool(settings)
    events = service_state.recent_events(settings, limit=10_000)
    restarts = sum(1 for e in events if e["event"] == "restarted")
    with counts.lock:
        line = {
            "t_s": round(time.monotonic() - t0, 1),
            "answered": len(counts.answered),
            "failed": counts.failed,
            "bad_refused": counts.bad_refused,
            "bad_wrong": counts.bad_wrong,
            "restarts": restarts,
            "crashes_seen": sum(1 for e in events if e["event"] in ("crash", "unhealthy")),
            "rss_triton_mb": round(_rss(launcher.running_pid(settings, launcher.TRITON), True)
                                   / 2**20, 1),
            "rss_collector_mb": round(_rss(launcher.running_pid(settings, launcher.COLLECTOR))
                                      / 2**20, 1),
            "rss_supervisor_mb": round(_rss(launcher.running_pid(settings, "supervisor"))
                                       / 2**20, 1),
            "spool_mb": round(spool_bytes / 2**20, 2),
            "spool_segments": spool_segments,
            "ready": launcher.status(settings).ready,
        }
    print(json.dumps(line), file=out, flush=True)


def _commit() -> str:
    head = Path(__file__).resolve().parents[1] / ".git"
    try:
        import subprocess  # noqa: PLC0415

        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False, cwd=head.parent).stdout.strip()
    except OSError:
        return ""


def main() -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--fault-every", type=float, default=45.0)
    parser.add_argument("--sample-every", type=float, default=15.0)
    parser.add_argument("--bad-every", type=int, default=50, help="every Nth request is bad")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as out:
            summary = run(args, out)
    else:
        summary = run(args, sys.stdout)
    return 0 if summary["stage_rows_duplicated_for_answered"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
