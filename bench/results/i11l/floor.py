"""What the issue-11 targets ask of the logging CPU, next to its measured floor, from one bench.overhead run.

Run: .venv/bin/python bench/results/i11l/floor.py bench/results/i11l/overhead-<commit>.json[.xz]

For each level: logging off's CPU per request on the whole machine (Triton + stubs + client,
every core), the CPU full logging may add for a throughput ratio r while the machine is CPU-bound
(off_cpu * (1/r - 1)), what full logging added in this run (server + collector + client, full - off),
and the ratio to logging off that full logging would need for full / trace >= 1.25.
The floor parts are measured elsewhere (each with its file); see README.md, section 4.
"""
import json, lzma, statistics, sys
from pathlib import Path

path = Path(sys.argv[1])
raw = lzma.open(path).read() if path.suffix == ".xz" else path.read_bytes()
runs = json.loads(raw)["runs"]

def med(mode, conc, key):
    vals = [r[key] for r in runs if r["mode"] == mode and r["concurrency"] == conc
            and not r.get("server_died") and r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")

def cpu(mode, conc):  # ms of CPU per request, every process of the stack and the load client
    return (med(mode, conc, "server_cpu_ms_per_req") + med(mode, conc, "collector_cpu_ms_per_req")
            + med(mode, conc, "client_cpu_ms_per_req"))

# the floor parts, us of CPU per request (six stages), each measured on this kind of VM:
FLOOR = {
    "record API, records made and dropped at emit (i11l faultdrive-discard.txt, every stub thread)": 71.2,
    "columnar encode alone, hot, no segment write (i11l digshare.txt)": 56.1,
    "chDB insert + merges, no views, no rollups, 1,600 requests per insert (i11k store-cost-1600.txt)": 100.4,
}
print(f"# {path}")
print("floor parts (us CPU per request):")
for k, v in FLOOR.items():
    print(f"  {v:6.1f}  {k}")
stage_floor = sum(list(FLOOR.values())[:2]); all_floor = sum(FLOOR.values())
print(f"  {stage_floor:6.1f}  stage side (the first two)\n  {all_floor:6.1f}  all three\n")
levels = sorted({r["concurrency"] for r in runs})
print("conc  off req/s  off CPU us/req  full-off us/req  budget@0.90  budget@0.97  best full/off from floor (all / stage side)  trace/off  full/off  full/off needed for trace x1.25")
for c in levels:
    off_rps, full_rps, trace_rps = (med(m, c, "throughput_rps") for m in ("off", "full", "trace"))
    off_cpu = cpu("off", c) * 1e3
    extra = cpu("full", c) * 1e3 - off_cpu
    b90 = off_cpu * (1 / 0.90 - 1); b97 = off_cpu * (1 / 0.97 - 1)
    best_all = off_cpu / (off_cpu + all_floor); best_stage = off_cpu / (off_cpu + stage_floor)
    t = trace_rps / off_rps; f = full_rps / off_rps
    print(f"{c:4d} {off_rps:10.1f} {off_cpu:15.0f} {extra:16.0f} {b90:12.0f} {b97:12.0f}"
          f"          {best_all:5.3f} / {best_stage:5.3f}                     {t:9.3f} {f:9.3f}  {1.25 * t:6.3f}{'  (> 1: not possible)' if 1.25 * t > 1 else ''}")
