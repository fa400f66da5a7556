"""Stage `features`: cleaned rows -> feature vectors, with per-card state (riskpipe.features)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from adapters import triton_io
from adapters.stage_model import StageModel
from riskpipe.features import DEFAULT_CARD_CAPACITY, FeatureBuilder
from riskpipe.preprocess import loads_row
from riskpipe.replay import ReplayError, from_request


class TritonPythonModel(StageModel):
    """Builds FEATURES (riskpipe.features.FEATURE_NAMES) and logs the card state it used."""

    pb = pb_utils
    errors = (*StageModel.errors, ReplayError)
    row_input = "PROCESSED"

    def setup(self, args):
        """Size the per-card state from the config."""
        capacity = int(self.params.get("card_capacity", DEFAULT_CARD_CAPACITY))
        self.stage = FeatureBuilder(capacity=capacity)

    def run(self, request, rec):
        """PROCESSED rows in; FEATURES out, with the card state they used."""
        processed = triton_io.strings(pb_utils, request, "PROCESSED")
        rec.input("PROCESSED", processed)
        parsed = [loads_row(data, i) for i, data in enumerate(processed[:, 0])]
        # a replay (riskpipe.replay) uses the logged card state, not the live one
        features, card_state = self.stage.build(parsed, from_request(request))
        rec.state("card_state", card_state)
        rec.output("FEATURES", features)
        return [pb_utils.Tensor("FEATURES", features.astype(np.float32))]
