"""Replay from the log: what a request's arrows were, the state to replay it with, and the diff.

``stagelog replay`` (``logging_backend/stack/replay.py`` sends the requests) uses this module
for everything that reads or writes the store:

- ``fetch`` reads one request's logged arrows (``stage_tensors``, byte for byte);
- ``replay_parameter`` turns the logged state of the stateful stages (the ``duplicate`` flags
  of ``preprocess``, its time of arrival, the ``card_state.*`` rows of ``features``) into the
  ``stagelog_replay`` request parameter (format: ``riskpipe/replay.py``), so that a replay
  computes from the logged state and leaves the live state alone;
- ``compare`` holds the replay's outputs against the logged ones, stage by stage: bit for bit,
  the largest absolute difference, class and decision flips, probabilities side by side;
- ``record`` writes one row per stage into ``stagelog.replays``, linked to the replayed
  request; ``shadow_metrics`` scores replayed probabilities against the labels of the log.

Replays have request ids starting with ``REPLAY_PREFIX``; the production metric views leave
them out (migration 0070).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from logging_backend.errors import StagelogError
from logging_backend.insights import traffic

Query = Callable[[str, "dict[str, Any] | None"], list[dict[str, Any]]]
REPLAY_PREFIX = traffic.REPLAY_PREFIX
PARAMETER = "stagelog_replay"  # riskpipe.replay.PARAMETER
STAGES = ("preprocess", "features", "mlp", "forest", "logreg", "aggregate")
MEMBERS = ("mlp", "forest", "logreg")
CLASSES = ("legit", "card_fraud", "account_takeover")
CARD_STATE_FIELDS = ("txn_count", "mean_amount_eur", "velocity_1h", "velocity_24h",
                     "last_device_id", "updated")
_IGNORED = {"REQUEST_ID"}  # carries the request id, which a replay changes by design

# Every tensor of one request with its values wherever they are stored: an input that another
# stage produced is kept as a reference (digest + source_stage/source_name, migration 0030) and
# resolved to the producer's row here; float32 values are in values_f32, others in values_f64.
_FETCH_SQL = (
    "SELECT t.stage AS stage, t.model_version AS model_version, t.direction AS direction, "
    "t.name AS name, t.dtype AS dtype, t.shape AS shape, t.policy AS policy, "
    "if(t.source_stage = '', "
    "   if(empty(t.values_f32), t.values_f64, arrayMap(x -> toFloat64(x), t.values_f32)), "
    "   if(empty(p.values_f32), p.values_f64, arrayMap(x -> toFloat64(x), p.values_f32))) "
    "   AS values_f64, "
    "arrayMap(x -> hex(x), if(t.source_stage = '', t.values_str, p.values_str)) AS values_hex "
    "FROM stagelog.stage_tensors AS t "
    "LEFT ANY JOIN (SELECT stage, name, values_str, values_f32, values_f64 "
    "  FROM stagelog.stage_tensors "
    "  WHERE request_id = {request_id:String} AND direction = 'output') AS p "
    "ON p.stage = t.source_stage AND p.name = t.source_name "
    "WHERE t.request_id = {request_id:String}"
)


class ReplayError(StagelogError):
    """Raised when a request cannot be replayed (unknown, not fully logged, or refused)."""


@dataclass
class Tensor:
    """One logged tensor: numbers (float64) or byte strings, and its shape."""

    shape: tuple[int, ...]
    numbers: list[float] = field(default_factory=list)
    strings: list[bytes] = field(default_factory=list)
    dtype: str = ""

    @property
    def rows(self) -> int:
        """Size of the batch dimension."""
        return self.shape[0] if self.shape else 0


@dataclass
class Logged:
    """What the log holds of one request: tensors by (stage, direction, name), versions."""

    request_id: str
    tensors: dict[tuple[str, str, str], Tensor]
    versions: dict[str, str]

    def get(self, stage: str, direction: str, name: str) -> Tensor:
        """One tensor, or ``ReplayError`` naming what is missing."""
        found = self.tensors.get((stage, direction, name))
        if found is None:
            raise ReplayError(
                f"request {self.request_id}: no logged {direction} {name!r} of {stage} "
                "(not fully logged, or expired)"
            )
        return found

    @property
    def rows(self) -> int:
        """Event rows of the request (from the RAW input)."""
        return self.get("preprocess", "input", "RAW").rows


def fetch(query: Query, request_id: str) -> Logged:
    """Read every logged tensor of one request.

    Raises:
        ReplayError: nothing is logged for it, or it was logged under a policy other than
            ``full`` (sampled out or summarised: no values to replay).
    """
    rows = query(_FETCH_SQL, {"request_id": request_id})
    if not rows:
        raise ReplayError(f"no logged tensors for request {request_id!r}")
    tensors: dict[tuple[str, str, str], Tensor] = {}
    versions: dict[str, str] = {}
    for r in rows:
        if r["policy"] not in ("full", "sampled"):
            raise ReplayError(f"request {request_id}: {r['stage']} logged it under policy "
                              f"{r['policy']!r}, without values")
        versions[r["stage"]] = str(r["model_version"])
        tensors[(r["stage"], r["direction"], r["name"])] = Tensor(
            shape=tuple(int(s) for s in r["shape"]),
            numbers=[float(v) for v in r["values_f64"]],
            strings=[bytes.fromhex(h) for h in r["values_hex"]],
            dtype=str(r["dtype"]),
        )
    return Logged(request_id, tensors, versions)


_STAGES_SQL = (
    "SELECT stage, policy, attributes['tensors'] AS kept FROM stagelog.stage_events "
    "WHERE request_id = {request_id:String}"
)


def unlanded(query: Query, logged: Logged, stages: Iterable[str] = STAGES) -> list[str]:
    """The stages of ``stages`` whose tensors of ``logged`` should be there and are not.

    A stage that kept no tensors of the request (policy ``off`` or ``summary``, or sampled
    out) is not missing; a stage with no ``stage_events`` row, or one that kept its tensors
    while none are in ``stage_tensors``, is: each stage ships on its own, so a request read
    right after it was served can be partly in the store.
    """
    have = {stage for stage, _, _ in logged.tensors}
    wanted = [s for s in stages if s not in have]
    if not wanted:
        return []
    kept: dict[str, bool] = {}
    for r in query(_STAGES_SQL, {"request_id": logged.request_id}):
        kept[str(r["stage"])] = r["policy"] in ("full", "summary") or (
            r["policy"] == "sampled" and r["kept"] == "kept")
    return [s for s in wanted if kept.get(s, True)]


def replay_parameter(logged: Logged) -> str:
    """The ``stagelog_replay`` parameter of a replay of ``logged`` (see ``riskpipe.replay``)."""
    processed = [json.loads(s) for s in logged.get("preprocess", "output", "PROCESSED").strings]
    arrival = next((row["ts"] for row in processed if "timestamp" in row.get("imputed", [])), None)
    card_state: dict[str, list[Any]] = {}
    for key in CARD_STATE_FIELDS:
        tensor = logged.get("features", "state", f"card_state.{key}")
        if tensor.strings:
            card_state[key] = [s.decode("utf-8") for s in tensor.strings]
        else:
            card_state[key] = [int(v) if key != "mean_amount_eur" else v for v in tensor.numbers]
    card_state["updated"] = [bool(v) for v in card_state["updated"]]
    return json.dumps(
        {
            "of": logged.request_id,
            "duplicate": [bool(row.get("duplicate", False)) for row in processed],
            "arrival_ts": arrival,
            "card_state": card_state,
        },
        separators=(",", ":"),
        allow_nan=False,
    )


def new_replay_id(suffix: str = "") -> str:
    """A fresh replay request id (``replay-<12 hex>[-suffix]``)."""
    return f"{REPLAY_PREFIX}{uuid.uuid4().hex[:12]}" + (f"-{suffix}" if suffix else "")


@dataclass
class StageResult:
    """How one stage of a replay compares with the logged request."""

    stage: str
    model_version: str
    logged_version: str
    match: bool
    max_abs_diff: float
    rows: int
    class_flips: int = 0
    decision_flips: int = 0
    request_id: str = ""
    replay_id: str = ""
    source: str = "raw"
    note: str = ""
    probabilities: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object (one per stage)."""
        out = asdict(self)
        out.pop("probabilities")
        out["max_abs_diff"] = self.max_abs_diff if math.isfinite(self.max_abs_diff) else None
        return out


def _probs(tensor: Tensor | None) -> list[list[float]]:
    if tensor is None or not tensor.numbers:
        return []
    width = tensor.shape[-1] if len(tensor.shape) > 1 else len(CLASSES)
    return [tensor.numbers[i : i + width] for i in range(0, len(tensor.numbers), width)]


def _argmax(row: Sequence[float]) -> int:
    return max(range(len(row)), key=lambda i: row[i])


def compare_stage(
    stage: str,
    logged: dict[tuple[str, str], Tensor],
    replayed: dict[tuple[str, str], Tensor],
    versions: tuple[str, str],
) -> StageResult:
    """Compare every output and state tensor of one stage (``(direction, name) -> Tensor``).

    Args:
        stage: the stage name.
        logged: the logged tensors of the stage.
        replayed: the replay's tensors of the stage.
        versions: (version the replay ran, version that served).
    """
    match, diff, notes = True, 0.0, []
    rows = 0
    for key, want in sorted(logged.items()):
        direction, name = key
        if direction == "input" or name in _IGNORED:
            continue
        rows = max(rows, want.rows)
        got = replayed.get(key)
        if got is None:
            match = False
            notes.append(f"no replayed {direction} {name}")
            continue
        if got.shape != want.shape:
            match = False
            notes.append(f"{name}: shape {list(got.shape)} vs logged {list(want.shape)}")
            continue
        if want.numbers or got.numbers:
            same = got.numbers == want.numbers  # float64 equality: bit for bit for finite values
            if want.numbers and got.numbers:
                diff = max(diff, max(abs(a - b) for a, b in zip(got.numbers, want.numbers,
                                                                   strict=True)))
        else:
            same = got.strings == want.strings
        if not same:
            match = False
            notes.append(f"{name} differs")
    probs_name = "PROBABILITIES" if stage == "aggregate" else "PROBS"
    want_p = _probs(logged.get(("output", probs_name)))
    got_p = _probs(replayed.get(("output", probs_name)))
    result = StageResult(stage, versions[0], versions[1], match, diff, rows,
                         note="; ".join(notes))
    if want_p and got_p and len(want_p) == len(got_p):
        want_d = [s.decode() for s in logged.get(("output", "DECISION"), Tensor(())).strings]
        got_d = [s.decode() for s in replayed.get(("output", "DECISION"), Tensor(())).strings]
        for row, (w, g) in enumerate(zip(want_p, got_p, strict=True)):
            flipped = _argmax(w) != _argmax(g)
            result.class_flips += flipped
            entry: dict[str, Any] = {"row": row, "logged": w, "replayed": g,
                                     "class_flip": flipped}
            if want_d and got_d:
                entry["logged_decision"], entry["replayed_decision"] = want_d[row], got_d[row]
                result.decision_flips += want_d[row] != got_d[row]
            result.probabilities.append(entry)
    return result


def by_stage(
    tensors: dict[tuple[str, str, str], Tensor],
) -> dict[str, dict[tuple[str, str], Tensor]]:
    """Regroup ``(stage, direction, name)`` keys by stage."""
    out: dict[str, dict[tuple[str, str], Tensor]] = {}
    for (stage, direction, name), tensor in tensors.items():
        out.setdefault(stage, {})[(direction, name)] = tensor
    return out


def compare(
    logged: Logged, replayed: Logged, stages: Iterable[str] = STAGES, source: str = "raw"
) -> list[StageResult]:
    """Compare a replay with the logged request, stage by stage (pipeline order)."""
    want, got = by_stage(logged.tensors), by_stage(replayed.tensors)
    out = []
    for stage in stages:
        if stage not in want:
            continue
        result = compare_stage(
            stage, want[stage], got.get(stage, {}),
            (replayed.versions.get(stage, "?"), logged.versions.get(stage, "?")),
        )
        result.request_id, result.replay_id, result.source = (
            logged.request_id, replayed.request_id, source)
        out.append(result)
    return out


def record(query: Query, results: Sequence[StageResult]) -> int:
    """Write one ``stagelog.replays`` row per stage result; returns the rows written."""
    if not results:
        return 0
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    query(
        "INSERT INTO stagelog.replays (ts, replay_id, request_id, source, stage, model_version, "
        "logged_version, rows, match, max_abs_diff, decision_flips, class_flips, detail) "
        "SELECT toDateTime64({ts:String}, 6, 'UTC'), r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, "
        "r.9, r.10, r.11, r.12 FROM (SELECT arrayJoin(arrayZip({replay_id:Array(String)}, "
        "{request_id:Array(String)}, {source:Array(String)}, {stage:Array(String)}, "
        "{version:Array(String)}, {logged:Array(String)}, {rows:Array(UInt32)}, "
        "{match:Array(Bool)}, {diff:Array(Float64)}, {dflips:Array(UInt32)}, "
        "{cflips:Array(UInt32)}, {detail:Array(String)})) AS r)",
        {
            "ts": now,
            "replay_id": [r.replay_id for r in results],
            "request_id": [r.request_id for r in results],
            "source": [r.source for r in results],
            "stage": [r.stage for r in results],
            "version": [r.model_version for r in results],
            "logged": [r.logged_version for r in results],
            "rows": [r.rows for r in results],
            "match": [r.match for r in results],
            "diff": [r.max_abs_diff for r in results],
            "dflips": [r.decision_flips for r in results],
            "cflips": [r.class_flips for r in results],
            "detail": [json.dumps({"note": r.note, "probabilities": r.probabilities})
                       for r in results],
        },
    )
    return len(results)


def labels(query: Query, request_ids: Sequence[str]) -> dict[tuple[str, int], str]:
    """The latest true label of every labelled row of ``request_ids``."""
    if not request_ids:
        return {}
    rows = query(
        "SELECT request_id, row, label FROM stagelog.labels_latest "
        "WHERE request_id IN {ids:Array(String)}",
        {"ids": list(request_ids)},
    )
    return {(str(r["request_id"]), int(r["row"])): str(r["label"]) for r in rows}


def shadow_metrics(
    results: Sequence[StageResult], truth: dict[tuple[str, int], str]
) -> list[dict[str, Any]]:
    """Accuracy and log-loss of the logged and the replayed probabilities on labelled rows.

    One entry per (stage, side): ``side`` is ``served`` (the logged outputs, the version that
    served) or ``replayed`` (the version the replay ran: a shadow evaluation from the log).
    Log-loss is clipped at 1e-15, as in view ``labelled_predictions``.
    """
    tally: dict[tuple[str, str, str], list[tuple[bool, float]]] = {}
    for r in results:
        for entry in r.probabilities:
            label = truth.get((r.request_id, int(entry["row"])))
            if label is None:
                continue
            k = CLASSES.index(label)
            for side, version, probs in (("served", r.logged_version, entry["logged"]),
                                         ("replayed", r.model_version, entry["replayed"])):
                tally.setdefault((r.stage, side, version), []).append(
                    (_argmax(probs) == k, -math.log(max(float(probs[k]), 1e-15))))
    out = []
    for (stage, side, version), items in tally.items():
        out.append({
            "stage": stage, "side": side, "model_version": version, "labelled_rows": len(items),
            "accuracy": round(sum(c for c, _ in items) / len(items), 4),
            "log_loss": round(sum(loss for _, loss in items) / len(items), 4),
        })
    order = {s: i for i, s in enumerate(STAGES)}
    return sorted(out, key=lambda e: (order.get(e["stage"], 99), e["side"] != "served"))


def select_requests(
    query: Query, t_from: datetime, t_to: datetime, where: str | None = None, limit: int = 100
) -> list[str]:
    """Ids of the served requests in ``[t_from, t_to)`` whose aggregate rows match ``where``.

    ``where`` is a SQL condition on ``stagelog.predictions`` columns (e.g. ``decision =
    'decline'``); replays are never selected.
    """
    condition = f" AND ({where})" if where else ""
    rows = query(
        "SELECT request_id, min(ts) AS first FROM stagelog.predictions "
        f"WHERE model = 'aggregate' AND {traffic.PRODUCTION} "
        "AND ts >= {t_from:DateTime64(6, 'UTC')} AND ts < {t_to:DateTime64(6, 'UTC')}"
        + condition + " GROUP BY request_id ORDER BY first LIMIT {limit:UInt32}",
        {"t_from": t_from.strftime("%Y-%m-%d %H:%M:%S.%f"),
         "t_to": t_to.strftime("%Y-%m-%d %H:%M:%S.%f"), "limit": limit},
    )
    return [str(r["request_id"]) for r in rows]
