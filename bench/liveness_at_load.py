"""How fast a busy tritonserver answers the supervisor's liveness check (the hang threshold).

``python -m bench.liveness_at_load [--clients 32] [--duration 120]`` starts a supervised stack
in a temporary home, drives it with ``--clients`` concurrent one-row ``pipeline`` clients (in
4 processes, so that the load does not share the sampler's interpreter), and meanwhile times a
gRPC ``ServerLive`` call every 0.1 s with the supervisor's deadline (``LIVE_TIMEOUT_S``). It
prints the latency quantiles, how many calls missed the deadline, the longest run of missed
calls, and the ``tritonserver`` crash rows of ``service_events`` (a false kill would be one).
The stack is stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

from bench.machine import cpu_model
from logging_backend import config
from logging_backend.stack import launcher, query, stages, supervisor

PROCESSES = 4


def _load(grpc_port: int, threads: int, until: float, counts: multiprocessing.Array) -> None:
    import tritonclient.grpc as grpcclient  # noqa: PLC0415

    from clients.score import score_batch  # noqa: PLC0415
    from training.generator import generate  # noqa: PLC0415

    pool = [item.event for item in generate(64, seed=3)]

    def one(worker: int) -> None:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        i = 0
        while time.time() < until:
            try:
                score_batch(client, [pool[(worker + i) % len(pool)]], timeout_s=30)
                with counts.get_lock():
                    counts[0] += 1
            except Exception:
                with counts.get_lock():
                    counts[1] += 1
            i += 1
        client.close()

    workers = [threading.Thread(target=one, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def main() -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="stagelog-liveness-"))
    ports = launcher.free_ports(3)
    settings = config.load(home=home, grpc_port=ports[0], http_port=ports[1],
                           metrics_port=ports[2])
    print(f"cpu: {cpu_model()}; clients {args.clients}; duration {args.duration:.0f} s; "
          f"hang threshold {settings.hang_ms} ms; liveness deadline "
          f"{supervisor.LIVE_TIMEOUT_S} s", flush=True)
    try:
        launcher.up(settings, timeout=300)
        server_pid = launcher.running_pid(settings, launcher.TRITON)
        until = time.time() + args.duration
        counts = multiprocessing.Array("l", 2)
        per = max(1, args.clients // PROCESSES)
        procs = [multiprocessing.Process(target=_load, args=(settings.grpc_port, per, until,
                                                             counts)) for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        time.sleep(3.0)  # let the load ramp up
        latencies, missed, run, longest = [], 0, 0, 0
        import tritonclient.grpc as grpcclient  # noqa: PLC0415

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{settings.grpc_port}")
        while time.time() < until - 1:
            started = time.perf_counter()
            ok = stages.server_live(settings.grpc_port, supervisor.LIVE_TIMEOUT_S, client)
            took = (time.perf_counter() - started) * 1000
            if ok:
                latencies.append(took)
                run = 0
            else:
                missed += 1
                run += 1
                longest = max(longest, run)
            time.sleep(0.1)
        for proc in procs:
            proc.join()
        latencies.sort()

        def q(share: float) -> float:  # nearest rank: never past the largest sample
            return latencies[min(len(latencies) - 1, int(share * len(latencies)))]

        print(f"requests answered {counts[0]}, failed {counts[1]} "
              f"({counts[0] / args.duration:.0f}/s)")
        print(f"ServerLive at load: {len(latencies)} answered, {missed} missed the "
              f"{supervisor.LIVE_TIMEOUT_S} s deadline (longest run {longest}); ms p50 "
              f"{q(0.5):.1f} p90 {q(0.9):.1f} p99 {q(0.99):.1f} max {latencies[-1]:.1f}")
        time.sleep(3.0)
        crashes = json.loads(query.execute(
            settings, "SELECT event, pid, detail FROM stagelog.service_events WHERE component "
            "= 'tritonserver'", {}, "JSONCompact"))["data"]
        same = launcher.running_pid(settings, launcher.TRITON) == server_pid
        print(f"tritonserver service_events during the run: {crashes}; same server pid "
              f"throughout: {same}")
        return 0 if same and not crashes else 1
    finally:
        launcher.down(settings)


if __name__ == "__main__":
    raise SystemExit(main())
