"""`stagelog replay`: send logged requests again over gRPC and compare with the log.

From ``raw``: the logged ``RAW`` rows go to ``pipeline`` with a fresh ``replay-…`` request id
and the ``stagelog_replay`` parameter (the logged state of the stateful stages), every stage
logs the replay like any request, and once its rows are in the store each stage's outputs are
compared with the logged ones. With ``--model M --version V`` where V is not the version that
served, ``M`` v V also scores the logged ``FEATURES`` and ``aggregate`` combines its output
with the other members' logged outputs, so decision flips show.

From ``features``: only ``M`` (v V, default the one that served) scores its logged
``FEATURES``, and ``aggregate`` combines as above.

Every comparison is written to ``stagelog.replays`` (``logging_backend.insights.replay``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from logging_backend.insights import replay as log_replay
from logging_backend.insights.replay import Logged, ReplayError, StageResult, Tensor

PIPELINE = "pipeline"
LAND_TIMEOUT_S = 60.0
_MEMBER_INPUT = {"mlp": "MLP_PROBS", "forest": "FOREST_PROBS", "logreg": "LOGREG_PROBS"}


@dataclass
class Outcome:
    """The replay of one logged request: per-stage results, or why it could not run."""

    request_id: str
    results: list[StageResult] = field(default_factory=list)
    error: str = ""


def _tensor(array: np.ndarray) -> Tensor:
    if array.dtype == np.object_:
        return Tensor(tuple(array.shape), strings=[bytes(v) for v in array.reshape(-1)])
    return Tensor(tuple(array.shape), numbers=array.astype(np.float64).reshape(-1).tolist())


def _floats(tensor: Tensor) -> np.ndarray:
    return np.asarray(tensor.numbers, dtype=np.float64).astype(np.float32).reshape(tensor.shape)


def _infer(client: grpcclient.InferenceServerClient, model: str, version: str,
           inputs: dict[str, np.ndarray], outputs: Sequence[str], request_id: str,
           parameters: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    tensors = []
    for name, array in inputs.items():
        kind = "BYTES" if array.dtype == np.object_ else "FP32"
        tensor = grpcclient.InferInput(name, list(array.shape), kind)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(
        model, tensors, model_version=version, request_id=request_id,
        outputs=[grpcclient.InferRequestedOutput(n) for n in outputs], parameters=parameters,
    )
    return {name: result.as_numpy(name) for name in outputs}


def _send_raw(client: grpcclient.InferenceServerClient, logged: Logged, replay_id: str) -> None:
    raw = logged.get("preprocess", "input", "RAW")
    rows = np.array(raw.strings, dtype=np.object_).reshape(raw.shape)
    _infer(client, PIPELINE, "", {"RAW": rows}, ["REQUEST_ID", "PROBABILITIES", "DECISION"],
           replay_id, {log_replay.PARAMETER: log_replay.replay_parameter(logged)})


def _member_and_aggregate(
    client: grpcclient.InferenceServerClient, logged: Logged, model: str, version: str,
    replay_id: str,
) -> Logged:
    """``model`` v ``version`` on the logged FEATURES, then ``aggregate`` with its output."""
    features = _floats(logged.get(model, "input", "FEATURES"))
    probs = _infer(client, model, version, {"FEATURES": features}, ["PROBS"], replay_id)["PROBS"]
    inputs = {}
    for member, name in _MEMBER_INPUT.items():
        inputs[name] = (probs if member == model
                        else _floats(logged.get(member, "output", "PROBS")))
    combined = _infer(client, "aggregate", logged.versions.get("aggregate", "1"), inputs,
                      ["PROBABILITIES", "DECISION"], replay_id)
    tensors = {(model, "output", "PROBS"): _tensor(probs)}
    for name, array in combined.items():
        tensors[("aggregate", "output", name)] = _tensor(array)
    return Logged(replay_id, tensors, {model: version,
                                       "aggregate": logged.versions.get("aggregate", "1")})


def _wait_landed(query: log_replay.Query, expected: dict[str, int], timeout_s: float) -> None:
    """Wait until every replay id has as many tensors in the store as the logged request."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = query(
            "SELECT request_id, count() AS n FROM stagelog.stage_tensors "
            "WHERE request_id IN {ids:Array(String)} GROUP BY request_id",
            {"ids": list(expected)},
        )
        have = {str(r["request_id"]): int(r["n"]) for r in rows}
        if all(have.get(rid, 0) >= n for rid, n in expected.items()):
            return
        if time.monotonic() > deadline:
            late = [rid for rid, n in expected.items() if have.get(rid, 0) < n]
            raise ReplayError(f"replays {late[:3]} not in the store after {timeout_s:.0f} s")
        time.sleep(0.2)


def replay(
    client: grpcclient.InferenceServerClient,
    query: log_replay.Query,
    request_ids: Sequence[str],
    source: str = "raw",
    model: str | None = None,
    version: str | None = None,
    timeout_s: float = LAND_TIMEOUT_S,
) -> list[Outcome]:
    """Replay logged requests and compare them with the log (results are recorded).

    Args:
        client: gRPC client of the running stack.
        query: how to run SQL on its store.
        request_ids: the requests to replay.
        source: ``raw`` (through ``pipeline``) or ``features`` (one member).
        model: the member to run on another version (required for ``features``).
        version: its version (default: the one that served).
        timeout_s: how long to wait for the replays' rows to reach the store.

    Raises:
        ReplayError: the arguments do not fit (``features`` without ``model``, unknown model).
    """
    if source not in ("raw", "features"):
        raise ReplayError(f"--from must be raw or features, got {source!r}")
    if model is not None and model not in _MEMBER_INPUT:
        raise ReplayError(f"--model must be one of {sorted(_MEMBER_INPUT)}, got {model!r}")
    if source == "features" and model is None:
        raise ReplayError("--from features replays one member: give --model")
    outcomes: list[Outcome] = []
    pending: dict[str, tuple[Outcome, Logged]] = {}
    for rid in request_ids:
        outcome = Outcome(rid)
        outcomes.append(outcome)
        try:
            logged = log_replay.fetch(query, rid)
            missing = log_replay.unlanded(query, logged)
            if missing:
                raise ReplayError(
                    f"request {rid}: the tensors of {', '.join(missing)} are not in the store "
                    "(still shipping: try again in a few seconds; or expired)"
                )
            if source == "raw":
                replay_id = log_replay.new_replay_id()
                _send_raw(client, logged, replay_id)
                pending[replay_id] = (outcome, logged)
            served = logged.versions.get(model or "", "")
            if model is not None and (source == "features" or (version or served) != served):
                alt = version or served
                replay_id = log_replay.new_replay_id(f"{model}-v{alt}")
                replayed = _member_and_aggregate(client, logged, model, alt, replay_id)
                outcome.results += log_replay.compare(logged, replayed, (model, "aggregate"),
                                                      source=source)
        except (ReplayError, InferenceServerException) as exc:
            outcome.error = str(exc)
    if pending:
        try:
            _wait_landed(query, {rid: len(lg.tensors) for rid, (_, lg) in pending.items()},
                         timeout_s)
        except ReplayError as exc:
            for outcome, _ in pending.values():
                outcome.error = str(exc)
            pending = {}
    for replay_id, (outcome, logged) in pending.items():
        served = log_replay.compare(logged, log_replay.fetch(query, replay_id))
        if outcome.results:  # the other version's member and aggregate replace served ones
            replaced = {r.stage for r in outcome.results}
            served = [r for r in served if r.stage not in replaced] + outcome.results
            order = {s: i for i, s in enumerate(log_replay.STAGES)}
            served.sort(key=lambda r: order[r.stage])
        outcome.results = served
    log_replay.record(query, [r for o in outcomes for r in o.results])
    return outcomes
