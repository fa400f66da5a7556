"""Stage `aggregate`: member probabilities -> their mean + a decision (riskpipe.aggregate)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from adapters import triton_io
from adapters.stage_model import StageModel
from riskpipe import aggregate
from riskpipe.schema import N_CLASSES, RowError

MEMBER_INPUTS = ("MLP_PROBS", "FOREST_PROBS", "LOGREG_PROBS")


class TritonPythonModel(StageModel):
    """Averages the members and decides approve / review / decline."""

    pb = pb_utils
    row_input = MEMBER_INPUTS[0]
    errors = (triton_io.InputError, RowError, ValueError)

    def setup(self, args):
        """Read and check the decision thresholds."""
        self.review_at = float(self.params.get("review_at", aggregate.REVIEW_AT))
        self.decline_at = float(self.params.get("decline_at", aggregate.DECLINE_AT))
        aggregate.decide(np.ones((1, N_CLASSES)) / N_CLASSES, self.review_at, self.decline_at)

    def run(self, request, rec):
        """The members' probabilities in; their mean and the decision out."""
        member_probs = []
        for name in MEMBER_INPUTS:
            probs = triton_io.floats(pb_utils, request, name, N_CLASSES)
            rec.input(name, probs)
            member_probs.append(probs)
        probs = aggregate.mean_probs(member_probs)
        decisions = aggregate.decide(probs, self.review_at, self.decline_at)
        rec.output("PROBABILITIES", probs)
        rec.output("DECISION", np.array(decisions, dtype=np.object_).reshape(-1, 1))
        rec.predictions(model=self.name, probs=probs, decisions=decisions)
        return [
            pb_utils.Tensor("PROBABILITIES", probs),
            triton_io.string_tensor(pb_utils, "DECISION", decisions),
        ]
