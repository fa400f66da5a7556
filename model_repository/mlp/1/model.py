"""Ensemble member `mlp`, version 1: FEATURES -> PROBS from this folder's model.npz."""

import triton_python_backend_utils as pb_utils

from adapters.members import MemberModel


class TritonPythonModel(MemberModel):
    """Adapter shared by all members (adapters.members.MemberModel, logic riskpipe.members)."""

    pb = pb_utils
