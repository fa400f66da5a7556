"""Model `feedback`: validate reported actions and labels, queue them for the spool, ACK each."""

import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from logging_backend import config
from logging_backend.feedback import FeedbackError, FeedbackSink, int_column, validate_batch
from logging_backend.stage import StageLog
from riskpipe import triton_io

_INPUTS = ("REQUEST_ID", "ROW", "KIND", "VALUE")


class TritonPythonModel:
    """Records what callers did with decisions and the true classes once known."""

    def initialize(self, args):
        """Open the stage log and the sink that writes `actions` / `labels` segments."""
        self.log = StageLog.from_triton_args(args)
        settings = config.load()
        self.sink = FeedbackSink(settings.spool_dir, flush_ms=settings.flush_ms)

    def execute(self, requests):
        """One response per request; a bad row fails its whole request, naming row and field."""
        responses = []
        for request in requests:
            call_id = request.request_id() or str(uuid.uuid4())
            rows = triton_io.row_count(pb_utils, request, "REQUEST_ID")
            with self.log.request(call_id, rows=rows) as rec:
                try:
                    ids, kinds, values = (
                        triton_io.strings(pb_utils, request, name)
                        for name in ("REQUEST_ID", "KIND", "VALUE")
                    )
                    row_tensor = pb_utils.get_input_tensor_by_name(request, "ROW")
                    row_numbers = int_column(
                        "ROW", None if row_tensor is None else row_tensor.as_numpy()
                    )
                    detail_tensor = pb_utils.get_input_tensor_by_name(request, "DETAIL")
                    details = None
                    if detail_tensor is not None:
                        details = triton_io.strings(pb_utils, request, "DETAIL")[:, 0]
                        rec.input("DETAIL", details.reshape(-1, 1))
                    columns = (ids, np.asarray(row_numbers).reshape(-1, 1), kinds, values)
                    for name, array in zip(_INPUTS, columns, strict=True):
                        rec.input(name, array)
                    reports = validate_batch(ids[:, 0], row_numbers, kinds[:, 0], values[:, 0],
                                             details)
                except (triton_io.InputError, FeedbackError) as exc:
                    rec.fail(str(exc))
                    responses.append(triton_io.error_response(pb_utils, str(exc)))
                    continue
                self.sink.record(reports)
                acks = [r.report_id for r in reports]
                rec.output("ACK", np.array(acks, dtype=np.object_).reshape(-1, 1))
                responses.append(
                    pb_utils.InferenceResponse(
                        output_tensors=[triton_io.string_tensor(pb_utils, "ACK", acks)]
                    )
                )
        return responses

    def finalize(self):
        """Flush queued reports and the stage log."""
        self.sink.close()
        self.log.close()
