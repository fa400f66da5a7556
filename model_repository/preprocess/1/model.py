"""Stage `preprocess`: raw JSON events -> request id + cleaned rows (riskpipe.preprocess)."""

import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from adapters import triton_io
from adapters.stage_model import StageModel
from riskpipe.preprocess import DEFAULT_DEDUP_CAPACITY, Preprocessor, dumps_row
from riskpipe.replay import ReplayError, from_request


class TritonPythonModel(StageModel):
    """Parses, validates, deduplicates, converts, clips and imputes each row."""

    pb = pb_utils
    errors = (*StageModel.errors, ReplayError)
    row_input = "RAW"

    def setup(self, args):
        """Size the duplicate filter from the config."""
        capacity = int(self.params.get("dedup_capacity", DEFAULT_DEDUP_CAPACITY))
        self.stage = Preprocessor(dedup_capacity=capacity)

    def request_id(self, request):
        """The client's request id, or a new UUID: the key of every later record."""
        return request.request_id() or str(uuid.uuid4())

    def run(self, request, rec):
        """RAW rows in; the id (one per row) and the processed rows out."""
        raw = triton_io.strings(pb_utils, request, "RAW")
        rec.input("RAW", raw)
        # a replay (riskpipe.replay) uses the logged duplicate flags and time of arrival
        processed = self.stage.process(list(raw[:, 0]), from_request(request))
        request_id = rec.request_id
        ids = np.array([request_id.encode("utf-8")] * len(processed), dtype=np.object_)
        out = np.array([dumps_row(row) for row in processed], dtype=np.object_)
        ids, out = ids.reshape(-1, 1), out.reshape(-1, 1)
        rec.output("REQUEST_ID", ids)
        rec.output("PROCESSED", out)
        return [pb_utils.Tensor("REQUEST_ID", ids), pb_utils.Tensor("PROCESSED", out)]
