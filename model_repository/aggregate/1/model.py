"""Stage `aggregate`: member probabilities -> their mean + a decision (riskpipe.aggregate)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from logging_backend.stage import StageLog
from riskpipe import aggregate, triton_io
from riskpipe.schema import N_CLASSES, RowError

MEMBER_INPUTS = ("MLP_PROBS", "FOREST_PROBS", "LOGREG_PROBS")


class TritonPythonModel:
    """Averages the members and decides approve / review / decline."""

    def initialize(self, args):
        """Read the decision thresholds and open the stage log."""
        params = triton_io.model_parameters(args)
        self.review_at = float(params.get("review_at", aggregate.REVIEW_AT))
        self.decline_at = float(params.get("decline_at", aggregate.DECLINE_AT))
        aggregate.decide(np.ones((1, N_CLASSES)) / N_CLASSES, self.review_at, self.decline_at)
        self.name = args["model_name"]
        self.log = StageLog.from_triton_args(args)

    def execute(self, requests):
        """One response per request."""
        responses = []
        for request in requests:
            rows = triton_io.row_count(pb_utils, request, MEMBER_INPUTS[0])
            with self.log.request(triton_io.request_id(pb_utils, request), rows=rows) as rec:
                try:
                    member_probs = []
                    for name in MEMBER_INPUTS:
                        probs = triton_io.floats(pb_utils, request, name, N_CLASSES)
                        rec.input(name, probs)
                        member_probs.append(probs)
                    probs = aggregate.mean_probs(member_probs)
                except (triton_io.InputError, RowError, ValueError) as exc:
                    rec.fail(str(exc))
                    responses.append(triton_io.error_response(pb_utils, str(exc)))
                    continue
                decisions = aggregate.decide(probs, self.review_at, self.decline_at)
                rec.output("PROBABILITIES", probs)
                rec.output("DECISION", np.array(decisions, dtype=np.object_).reshape(-1, 1))
                rec.predictions(model=self.name, probs=probs, decisions=decisions)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("PROBABILITIES", probs),
                            triton_io.string_tensor(pb_utils, "DECISION", decisions),
                        ]
                    )
                )
        return responses

    def finalize(self):
        """Flush the stage log."""
        self.log.close()
