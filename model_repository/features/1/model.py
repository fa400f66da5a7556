"""Stage `features`: cleaned rows -> feature vectors, with per-card state (riskpipe.features)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from logging_backend.stage import StageLog
from riskpipe import triton_io
from riskpipe.features import DEFAULT_CARD_CAPACITY, FeatureBuilder
from riskpipe.preprocess import loads_row
from riskpipe.schema import RowError


class TritonPythonModel:
    """Builds FEATURES (riskpipe.features.FEATURE_NAMES) and logs the card state it used."""

    def initialize(self, args):
        """Read the stage settings and open the stage log."""
        params = triton_io.model_parameters(args)
        capacity = int(params.get("card_capacity", DEFAULT_CARD_CAPACITY))
        self.stage = FeatureBuilder(capacity=capacity)
        self.log = StageLog.from_triton_args(args)

    def execute(self, requests):
        """One response per request."""
        responses = []
        for request in requests:
            rows = triton_io.row_count(pb_utils, request, "PROCESSED")
            with self.log.request(triton_io.request_id(pb_utils, request), rows=rows) as rec:
                try:
                    processed = triton_io.strings(pb_utils, request, "PROCESSED")
                    rec.input("PROCESSED", processed)
                    parsed = [loads_row(data, i) for i, data in enumerate(processed[:, 0])]
                    features, card_state = self.stage.build(parsed)
                except (triton_io.InputError, RowError) as exc:
                    rec.fail(str(exc))
                    responses.append(triton_io.error_response(pb_utils, str(exc)))
                    continue
                rec.state("card_state", card_state)
                rec.output("FEATURES", features)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("FEATURES", features.astype(np.float32))]
                    )
                )
        return responses

    def finalize(self):
        """Flush the stage log."""
        self.log.close()
