"""The stages as the supervisor sees them: stub processes, their regions, probes, reloads.

Nothing here decides anything: `probe_stages` says which stage is down and why, `stubs_of`
and `server_regions` name a server's stub processes and shared-memory regions, `reload_model`
restarts one model's stubs, `success_counts` reads Triton's per-model success counter.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from logging_backend.collector.triton_watch import parse_prometheus
from logging_backend.insights import traffic

LOG = logging.getLogger("stagelog.supervisor")

PROBE_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 5.0  # repository index, metadata: no model runs, the server answers at once
LIVE_TIMEOUT_S = 2.0  # one ServerLive call
LOAD_TIMEOUT_S = 120.0  # a model load starts new stubs (numpy, the artifacts)
PROBE_PREFIX = traffic.PROBE_PREFIX  # left out of production metrics (migration 0085)
MEMBERS = ("mlp", "forest", "logreg")
SHM_DIR = Path("/dev/shm")

_REGION_PREFIX = "triton_python_backend_shm_region_"
_UNHEALTHY = re.compile(r"Stub process '(.+?)_\d+_\d+' is not healthy")


# --------------------------------------------------------------------------- stubs


@dataclass(frozen=True)
class Stub:
    """One Python-backend stub process of the server."""

    pid: int
    model: str
    version: str
    instance: str
    shm_region: str


def stubs_of(server_pid: int) -> list[Stub]:
    """The stub processes of ``server_pid``, read from their command lines.

    A stub's arguments are ``<model.py> <shm region> <sizes> <parent pid> <backend dir>
    <...> <instance name> <kind>``; the model and version are the folders of ``model.py``.
    """
    out = []
    try:
        children = psutil.Process(server_pid).children()
    except psutil.Error:
        return out
    for child in children:
        try:
            args = child.cmdline()
        except psutil.Error:
            continue
        if len(args) < 9 or not args[0].endswith("triton_python_backend_stub"):
            continue
        model_py = Path(args[1])
        out.append(
            Stub(
                pid=child.pid,
                model=model_py.parent.parent.name,
                version=model_py.parent.name,
                instance=args[-2],
                shm_region=args[2],
            )
        )
    return out


def server_regions(server_pid: int) -> set[str]:
    """The stub shared-memory regions ``server_pid`` has mapped (``/proc/<pid>/maps``).

    The server maps the region of every stub it started, and keeps the mapping of a stub that
    died: this names the regions of this server's stubs even when the supervisor never saw
    the stub alive.
    """
    found = set()
    try:
        with open(f"/proc/{server_pid}/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.rstrip("\n").split(None, 5)
                path = fields[5] if len(fields) == 6 else ""
                if path.startswith(f"{SHM_DIR}/{_REGION_PREFIX}"):
                    found.add(path.rsplit("/", 1)[-1].removesuffix(" (deleted)"))
    except OSError:
        pass
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def remove_regions(regions: set[str], live: list[Stub]) -> list[str]:
    """Remove ``/dev/shm`` regions of dead stubs (never one a live stub of ours names)."""
    in_use = {s.shm_region for s in live}
    removed = []
    for region in sorted(regions - in_use):
        if "/" in region or not region.startswith(_REGION_PREFIX):
            continue
        path = SHM_DIR / region
        try:
            path.unlink()
            removed.append(region)
        except FileNotFoundError:
            continue
        except OSError as exc:
            LOG.warning("cannot remove %s: %s", path, exc)
    return removed


# --------------------------------------------------------------------------- probes


def _client(grpc_port: int) -> Any:
    import tritonclient.grpc as grpcclient  # noqa: PLC0415 - heavy; only the probe needs it

    return grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")


def _input(name: str, array: np.ndarray, dtype: str) -> Any:
    import tritonclient.grpc as grpcclient  # noqa: PLC0415

    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


def server_live(grpc_port: int, timeout_s: float = LIVE_TIMEOUT_S, client: Any = None) -> bool:
    """Whether the server answers gRPC ``ServerLive`` within ``timeout_s``.

    The call runs on Triton's gRPC front end and no model: a server under inference load
    still answers it in milliseconds, a stopped or deadlocked one never.
    """
    try:
        own = client is None
        client = _client(grpc_port) if own else client
        try:
            return bool(client.is_server_live(client_timeout=timeout_s))
        finally:
            if own:
                client.close()
    except Exception:  # refused, unavailable, deadline exceeded
        return False


def _strings(*values: str) -> np.ndarray:
    return np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)


@dataclass
class ProbeResult:
    """What one round of probes found: stage -> why it is down."""

    down: dict[str, str] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)


def probe_stages(grpc_port: int, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Probe every stage with a tiny inference; return the stages that are down and why."""
    result = ProbeResult()
    try:
        client = _client(grpc_port)
        index = client.get_model_repository_index(
            as_json=True, client_timeout=CALL_TIMEOUT_S
        ).get("models", [])
    except Exception as exc:  # the server itself is down: the process check handles it
        result.down["tritonserver"] = f"repository index failed: {exc}"
        return result
    ready: dict[str, list[str]] = {}
    for entry in index:
        name, state = entry.get("name", ""), entry.get("state", "")
        if state == "READY":
            ready.setdefault(name, []).append(str(entry.get("version", "")))
        elif name and name not in ready:
            result.down.setdefault(name, f"state {state or 'unknown'}: {entry.get('reason', '')}")
    for name in list(result.down):
        if name in ready:
            del result.down[name]  # another version is ready (an old one was unloaded)

    def call(model: str, inputs: list[Any], version: str = "") -> str | None:
        try:
            client.infer(
                model, inputs, model_version=version, request_id=f"{PROBE_PREFIX}{model}",
                client_timeout=timeout_s,
            )
        except Exception as exc:
            return str(exc)
        return None

    def blame(model: str, error: str | None) -> None:
        if error is None:
            return
        match = _UNHEALTHY.search(error)
        if any(word in error for word in ("Failed to connect", "Socket closed", "refused")):
            result.down.setdefault("tritonserver", error)  # the server, not this stage
        elif match:
            result.down.setdefault(match.group(1), error)
        elif "DEADLINE" in error.upper():
            if not server_live(grpc_port, client=client):  # the server hangs, not this stage
                result.down.setdefault("tritonserver", f"probe of {model} timed out and "
                                       "the server answers no liveness check")
            else:
                result.down.setdefault(model, f"probe timed out after {timeout_s:.0f} s")
        elif "UNAVAILABLE" in error or "not ready" in error or "unknown model" in error:
            result.down.setdefault(model, error)
        else:
            # Answered with an error (the feedback probe's INVALID_ARG, by design): the stub ran.
            LOG.debug("probe of %s answered: %s", model, error)

    def server_down() -> bool:
        return "tritonserver" in result.down  # stop probing: every call would wait its timeout

    if "pipeline" in ready:
        event = {"event_id": f"{PROBE_PREFIX}pipeline", "amount": 1.0, "card_id": "probe"}
        blame("pipeline", call("pipeline", [_input("RAW", _strings(json.dumps(event)), "BYTES")]))
    if "feedback" in ready and not server_down():
        inputs = [
            _input("REQUEST_ID", _strings(f"{PROBE_PREFIX}feedback"), "BYTES"),
            _input("ROW", np.zeros((1, 1), dtype=np.int32), "INT32"),
            _input("KIND", _strings("probe"), "BYTES"),
            _input("VALUE", _strings("probe"), "BYTES"),
        ]
        blame("feedback", call("feedback", inputs))
    for member in MEMBERS:
        for version in ready.get(member, []):
            if server_down():
                break
            try:
                meta = client.get_model_metadata(
                    member, version, as_json=True, client_timeout=CALL_TIMEOUT_S
                )
                (shape,) = [i["shape"] for i in meta["inputs"] if i["name"] == "FEATURES"]
                width = int(shape[-1])
            except Exception as exc:
                result.down.setdefault(member, f"metadata failed: {exc}")
                continue
            zeros = np.zeros((1, width), dtype=np.float32)
            blame(member, call(member, [_input("FEATURES", zeros, "FP32")], version))
    if server_down():
        return ProbeResult(down={"tritonserver": result.down["tritonserver"]})
    if set(result.down) - {"pipeline"}:
        result.down.pop("pipeline", None)  # the ensemble fails because a stage is down
    return result


def reload_model(grpc_port: int, model: str, unload_timeout_s: float = 10.0) -> None:
    """Unload ``model`` and load it again: new stubs, whatever state the old ones were in.

    A plain load of a loaded model whose files did not change is a no-op in 2.51 (and a load
    with the same config override only updates it in place), so a dead stub would stay dead.
    Models that depend on it (``pipeline``) are unavailable in between and come back with it.
    """
    client = _client(grpc_port)
    try:
        client.unload_model(model, client_timeout=unload_timeout_s)
    except Exception as exc:  # not loaded (a failed load): load it
        LOG.info("unload of %s before reload: %s", model, exc)
    deadline = time.monotonic() + unload_timeout_s
    while time.monotonic() < deadline:
        try:
            if not client.is_model_ready(model, client_timeout=CALL_TIMEOUT_S):
                break
        except Exception:
            break
        time.sleep(0.05)
    client.load_model(model, client_timeout=LOAD_TIMEOUT_S)


def success_counts(metrics_port: int) -> dict[tuple[str, str], int]:
    """``nv_inference_request_success`` per (model, version) from Triton's metrics.

    One stub serves one version (one instance each here), so a dead stub's requests are the
    count of its own version: ``mlp`` versions 1 and 2 are two stubs.
    """
    import urllib.request  # noqa: PLC0415

    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return {}
    out: dict[tuple[str, str], int] = {}
    for name, labels, value in parse_prometheus(text, ("nv_inference_request_success",)):
        if name == "nv_inference_request_success":
            key = (labels.get("model", ""), labels.get("version", ""))
            out[key] = out.get(key, 0) + int(value)
    return out
