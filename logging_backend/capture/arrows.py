"""Which of a stage's inputs are another stage's outputs: the arrows of the ensembles.

Read once at model load from the model repository's ensemble configs (``platform:
"ensemble"``, their ``ensemble_scheduling`` steps): an input the ensemble feeds from another
step's output is stored once, by the producer, and the consumer keeps a digest of what it
received (:mod:`logging_backend.capture.encode`). An input fed by the ensemble's own inputs
(``RAW``), an input two ensembles feed from different producers, or one whose producer may not
have stored the values of a request this stage keeps (its ``logging_policy`` is not ``full``,
and not ``sampled`` at a rate at least this stage's sampled rate: sampling keeps a request when
``crc32(id) < rate * 2**32``, so a lower rate keeps a subset) keeps full copies.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

_LOG = logging.getLogger("stagelog.arrows")

ARROW_MODES = ("digest", "full")
_COMMENT = re.compile(r"#[^\n]*")
_PLATFORM = re.compile(r'platform\s*:\s*"ensemble"')
_MODEL_NAME = re.compile(r'model_name\s*:\s*"([^"]+)"')
_MAP = re.compile(
    r'(input_map|output_map)\s*\{\s*(?:key\s*:\s*"([^"]*)"\s*value\s*:\s*"([^"]*)"'
    r'|value\s*:\s*"([^"]*)"\s*key\s*:\s*"([^"]*)")\s*\}'
)
_PARAM = re.compile(
    r'parameters\s*\{\s*key\s*:\s*"([^"]+)"\s*value\s*:\s*\{\s*string_value\s*:\s*"([^"]*)"'
)


@dataclass
class Step:
    """One step of an ensemble: the model, its input and output maps (key -> ensemble tensor)."""

    model: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArrowPlan:
    """What one stage stores by reference, and which of its outputs others refer to."""

    sources: dict[str, tuple[str, str]]  # input -> (producer stage, producer output)
    outputs: frozenset[str]  # outputs another stage stores as a digest of
    full_copies: dict[str, str]  # input fed by a stage, kept in full -> why


def parse_steps(text: str) -> list[Step] | None:
    """The steps of an ensemble config (``config.pbtxt`` text); None when not an ensemble."""
    text = _COMMENT.sub("", text)
    if not _PLATFORM.search(text):
        return None
    start = text.find("ensemble_scheduling")
    if start < 0:
        return []
    body = text[start:]
    marks = list(_MODEL_NAME.finditer(body))
    steps = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        step = Step(mark.group(1))
        for m in _MAP.finditer(body, mark.end(), end):
            kind = m.group(1)
            key, value = (m.group(2), m.group(3)) if m.group(2) is not None else m.group(5, 4)
            (step.inputs if kind == "input_map" else step.outputs)[key] = value
        steps.append(step)
    return steps


def model_parameters(text: str) -> dict[str, str]:
    """The ``parameters`` string values of a model config."""
    return {k: v for k, v in _PARAM.findall(_COMMENT.sub("", text))}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def plan(
    repository: str | Path | None,
    model: str,
    mode: str = "digest",
    policy: str = "full",
    sample_rate: float = 1.0,
) -> ArrowPlan:
    """The arrow plan of ``model`` from the ensembles in ``repository`` (the repository root).

    Args:
        repository: The model repository root (the parent of the model's folder).
        model: The stage's model name.
        mode: ``digest`` (default: store arrows once) or ``full`` (the stage's config asked for
            full copies of every input).
        policy: This stage's logging policy.
        sample_rate: This stage's sample rate (policy ``sampled``).
    """
    if repository is None:
        return ArrowPlan({}, frozenset(), {})
    root = Path(repository)
    ensembles = []
    try:
        configs = sorted(root.glob("*/config.pbtxt"))
    except OSError:
        configs = []
    for config in configs:
        steps = parse_steps(_read(config))
        if steps:
            ensembles.append(steps)
    candidates: dict[str, set[tuple[str, str]]] = {}
    outputs: set[str] = set()
    for steps in ensembles:
        producers = {t: (s.model, key) for s in steps for key, t in s.outputs.items()}
        consumed = {t for s in steps if s.model != model for t in s.inputs.values()}
        for step in steps:
            if step.model == model:
                outputs.update(key for key, t in step.outputs.items() if t in consumed)
                for key, tensor in step.inputs.items():
                    source = producers.get(tensor)
                    if source is not None and source[0] != model:
                        candidates.setdefault(key, set()).add(source)
    sources: dict[str, tuple[str, str]] = {}
    full: dict[str, str] = {}
    for key, found in sorted(candidates.items()):
        if mode == "full":
            full[key] = "logging_arrows=full in the stage's config"
            continue
        if len(found) > 1:
            full[key] = f"fed by {len(found)} different producers across ensembles"
            continue
        (producer, output) = next(iter(found))
        params = model_parameters(_read(root / producer / "config.pbtxt"))
        producer_policy = (params.get("logging_policy") or "full").strip().lower()
        if producer_policy == "sampled" and policy == "sampled":
            try:
                producer_rate = float(params.get("sample_rate") or "nan")
            except ValueError:
                producer_rate = float("nan")
            if not producer_rate >= sample_rate:
                full[key] = f"producer {producer} samples fewer requests than this stage"
                continue
        elif producer_policy != "full":
            full[key] = f"producer {producer} logs {producer_policy}, not full values"
            continue
        sources[key] = (producer, output)
    return ArrowPlan(sources, frozenset(outputs), full)


def describe(plan_: ArrowPlan) -> str:
    """The reason text of the stage's ``logging_policy`` row about its arrows."""
    parts = []
    if plan_.sources:
        refs = ", ".join(f"{k} = {p}.{o}" for k, (p, o) in sorted(plan_.sources.items()))
        parts.append(
            f"inputs stored once, as digests of the producer's stored output: {refs} "
            "(model config parameter logging_arrows=full keeps copies)"
        )
    if plan_.full_copies:
        kept = ", ".join(f"{k} ({why})" for k, why in sorted(plan_.full_copies.items()))
        parts.append(f"inputs kept as full copies: {kept}")
    return "; ".join(parts)
