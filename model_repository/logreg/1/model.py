"""Ensemble member `logreg`, version 1: FEATURES -> PROBS from this folder's model.npz."""

import triton_python_backend_utils as pb_utils

from riskpipe.triton_io import MemberModel


class TritonPythonModel(MemberModel):
    """Adapter shared by all members (riskpipe.triton_io.MemberModel, logic riskpipe.members)."""

    pb = pb_utils
