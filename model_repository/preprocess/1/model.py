"""Stage `preprocess`: raw JSON events -> request id + cleaned rows (riskpipe.preprocess)."""

import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from logging_backend.stage import StageLog
from riskpipe import triton_io
from riskpipe.preprocess import DEFAULT_DEDUP_CAPACITY, Preprocessor, dumps_row
from riskpipe.schema import RowError


class TritonPythonModel:
    """Parses, validates, deduplicates, converts, clips and imputes each row."""

    def initialize(self, args):
        """Read the stage settings and open the stage log."""
        params = triton_io.model_parameters(args)
        capacity = int(params.get("dedup_capacity", DEFAULT_DEDUP_CAPACITY))
        self.stage = Preprocessor(dedup_capacity=capacity)
        self.log = StageLog.from_triton_args(args)

    def execute(self, requests):
        """One response per request; a row that cannot be scored fails its request."""
        responses = []
        for request in requests:
            request_id = request.request_id() or str(uuid.uuid4())
            rows = triton_io.row_count(pb_utils, request, "RAW")
            with self.log.request(request_id, rows=rows) as rec:
                try:
                    raw = triton_io.strings(pb_utils, request, "RAW")
                    rec.input("RAW", raw)
                    processed = self.stage.process(list(raw[:, 0]))
                except (triton_io.InputError, RowError) as exc:
                    rec.fail(str(exc))
                    responses.append(triton_io.error_response(pb_utils, str(exc)))
                    continue
                ids = np.array([request_id.encode("utf-8")] * len(processed), dtype=np.object_)
                out = np.array([dumps_row(row) for row in processed], dtype=np.object_)
                ids, out = ids.reshape(-1, 1), out.reshape(-1, 1)
                rec.output("REQUEST_ID", ids)
                rec.output("PROCESSED", out)
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[
                            pb_utils.Tensor("REQUEST_ID", ids),
                            pb_utils.Tensor("PROCESSED", out),
                        ]
                    )
                )
        return responses

    def finalize(self):
        """Flush the stage log."""
        self.log.close()
