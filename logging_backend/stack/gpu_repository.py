"""Config generation for GPU serving: a copy of the model repository with GPU member instances.

The committed ``model_repository/`` stays valid on a machine without a GPU (``KIND_CPU``
everywhere). ``stagelog up --gpu`` and ``gpu/check.py`` serve a generated copy instead, in which
the ensemble members (``mlp``, ``forest``, ``logreg``) get ``KIND_GPU`` instance groups; Triton
hands each instance its device in ``model_instance_device_id`` and the members run through CuPy
(``STAGELOG_DEVICE=gpu``). Version folders are symlinked, so artifact hashes do not change.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from logging_backend.errors import ConfigError

MEMBERS = ("mlp", "forest", "logreg")
ENSEMBLE = "pipeline"
_INSTANCE_GROUP = re.compile(r"instance_group\s*\[[^\]]*\]")
_REQUEST_ID_MAP = re.compile(
    r'\s*input_map\s*\{\s*key:\s*"REQUEST_ID"\s+value:\s*"REQUEST_ID"\s*\}'
)
_STEP_MODEL = re.compile(r'model_name:\s*"([^"]+)"')


def gpu_instance_group(count: int = 1, gpus: Sequence[int] = (0,), kind: str = "KIND_GPU") -> str:
    """The ``instance_group`` of a member on the GPU (``kind="KIND_CPU"``: on the CPU)."""
    if kind == "KIND_CPU":
        return f"instance_group [ {{ kind: KIND_CPU count: {count} }} ]"
    if kind != "KIND_GPU":
        raise ConfigError(f"instance kind {kind!r} must be KIND_GPU or KIND_CPU")
    ids = ", ".join(str(g) for g in gpus)
    return f"instance_group [ {{ kind: KIND_GPU count: {count} gpus: [ {ids} ] }} ]"


def member_config_for_gpu(
    text: str, count: int = 1, gpus: Sequence[int] = (0,), kind: str = "KIND_GPU"
) -> str:
    """A member's ``config.pbtxt`` with its instance group moved to the GPU (or ``kind``)."""
    group = gpu_instance_group(count, gpus, kind)
    if _INSTANCE_GROUP.search(text):
        return _INSTANCE_GROUP.sub(group, text, count=1)
    return text.rstrip("\n") + "\n" + group + "\n"


def ensemble_without_member_ids(text: str, members: Sequence[str] = MEMBERS) -> str:
    """The ensemble config with ``REQUEST_ID`` no longer mapped into the members' steps.

    Needed where the member stubs run on NumPy 2 (the bundled 2.51 stub cannot read a string
    tensor there; docs/gpu.md). The members then take the id from Triton's request id, which
    Triton copies from the client's request.
    """
    # Each step is a block from one `model_name:` to the next; edit only member blocks.
    starts = [m.start() for m in _STEP_MODEL.finditer(text)] + [len(text)]
    out = [text[: starts[0]]]
    for begin, end in zip(starts, starts[1:], strict=False):
        block = text[begin:end]
        name = _STEP_MODEL.match(block)
        if name and name.group(1) in members:
            block = _REQUEST_ID_MAP.sub("", block)
        out.append(block)
    return "".join(out)


def write_gpu_repository(
    src: str | Path,
    dst: str | Path,
    members: Sequence[str] = MEMBERS,
    count: int = 1,
    gpus: Sequence[int] = (0,),
    map_request_id: bool = True,
    kind: str = "KIND_GPU",
) -> Path:
    """Write the GPU variant of the model repository ``src`` into ``dst`` (replaced).

    Args:
        src: The model repository (``model_repository/``).
        dst: Where to write the variant (e.g. ``$STAGELOG_HOME/model_repository_gpu``).
        members: Models whose instances go to the GPU.
        count: Instances per GPU of each member.
        gpus: CUDA device ordinals to place them on.
        map_request_id: False drops ``REQUEST_ID`` from the members' ensemble inputs (for
            NumPy-2 member stubs, see :func:`ensemble_without_member_ids`).
        kind: ``KIND_GPU``; ``KIND_CPU`` keeps the members on the CPU (the GPU check's
            CPU-members phase and its dry run use the same generated layout).

    Returns:
        ``dst``.

    Raises:
        ConfigError: ``src`` has no ``config.pbtxt`` for one of ``members``.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if dst == src:
        raise ConfigError(f"the GPU repository must not overwrite {src}")
    missing = [m for m in members if not (src / m / "config.pbtxt").is_file()]
    if missing:
        raise ConfigError(f"{src} has no config.pbtxt for {', '.join(missing)}")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for model in sorted(p for p in src.iterdir() if (p / "config.pbtxt").is_file()):
        target = dst / model.name
        target.mkdir()
        for item in model.iterdir():
            if item.name == "config.pbtxt":
                continue
            (target / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
        text = (model / "config.pbtxt").read_text()
        if model.name in members:
            text = member_config_for_gpu(text, count, gpus, kind)
        elif model.name == ENSEMBLE and not map_request_id:
            text = ensemble_without_member_ids(text, members)
        (target / "config.pbtxt").write_text(text)
    return dst
