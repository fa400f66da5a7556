"""The adapter of an ensemble member: ``FEATURES`` in, ``PROBS`` out (every member version)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from adapters.stage_model import StageModel
from adapters.triton_io import float_tensor, floats, version_dir
from logging_backend import config
from logging_backend.capture.gpu_probe import probe_for_instance, record_fallback
from riskpipe import members
from riskpipe.xp import get_xp, to_numpy


def choose_device(pb: ModuleType, model_name: str) -> Any:
    """The array module for ``STAGELOG_DEVICE``; a fallback is logged (a warning for 'gpu')."""
    device = config.load().device
    chosen = get_xp(device)
    if chosen.reason:
        log = pb.Logger.log_warn if device == "gpu" else pb.Logger.log_info
        log(f"{model_name}: {chosen.reason}")
    return chosen


class MemberModel(StageModel):
    """Class probabilities ``[rows, 3]`` from the ``model.npz`` of the version being loaded.

    Subclasses set ``pb`` to ``triton_python_backend_utils``.
    """

    row_input = "FEATURES"

    def initialize(self, args: dict[str, Any]) -> None:
        """Load this version's arrays onto the chosen device and open the stage log."""
        self.name = str(args["model_name"])
        self.array_module = choose_device(self.pb, self.name)
        # The probe binds Triton's device for this instance before the weights are loaded.
        self.gpu = probe_for_instance(args, self.array_module.device)
        if self.gpu.reason:
            self.pb.Logger.log_warn(f"{self.name}: running on CPU: {self.gpu.reason}")
            self.array_module = get_xp("cpu")
        self.member = members.load_member(version_dir(args), self.array_module.xp)
        self.n_features = int(getattr(self.member, "n_features", 0))
        self.log = self.open_log(args, gpu=self.gpu)
        record_fallback(self.log, self.array_module.reason or self.gpu.reason)

    def run(self, request: Any, rec: Any) -> list[Any]:
        """Features in, probabilities out; GPU time measured around the member's work."""
        features = floats(self.pb, request, "FEATURES", self.n_features)
        rec.input("FEATURES", features)
        span = self.gpu.start()  # CUDA events around copy-in, compute, copy-out
        probs = to_numpy(self.member.predict_proba(features))
        rec.gpu_time(self.gpu.stop(span))
        probs = np.ascontiguousarray(probs, dtype=np.float32)
        rec.output("PROBS", probs)
        rec.predictions(model=self.name, probs=probs)
        return [float_tensor(self.pb, "PROBS", probs)]
