"""Model `feedback`: validate reported actions and labels, write them through the stage log."""

import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from adapters import triton_io
from adapters.feedback import FeedbackError, int_column, table_rows, validate_batch
from adapters.stage_model import StageModel

_INPUTS = ("REQUEST_ID", "ROW", "KIND", "VALUE")


class TritonPythonModel(StageModel):
    """Records what callers did with decisions and the true classes once known."""

    pb = pb_utils
    row_input = "REQUEST_ID"
    errors = (triton_io.InputError, FeedbackError)
    # reports are data the caller sent on purpose, not instrumentation: kept with logging off
    keep_data_when_logging_off = True

    def request_id(self, request):
        """The id of this call (the reports name the scored requests in their rows)."""
        return request.request_id() or str(uuid.uuid4())

    def run(self, request, rec):
        """Validate every row (a bad one fails the whole request), record the reports, ACK."""
        ids, kinds, values = (
            triton_io.strings(pb_utils, request, name) for name in ("REQUEST_ID", "KIND", "VALUE")
        )
        row_tensor = pb_utils.get_input_tensor_by_name(request, "ROW")
        row_numbers = int_column("ROW", None if row_tensor is None else row_tensor.as_numpy())
        detail_tensor = pb_utils.get_input_tensor_by_name(request, "DETAIL")
        details = None
        if detail_tensor is not None:
            details = triton_io.strings(pb_utils, request, "DETAIL")[:, 0]
            rec.input("DETAIL", details.reshape(-1, 1))
        columns = (ids, np.asarray(row_numbers).reshape(-1, 1), kinds, values)
        for name, array in zip(_INPUTS, columns, strict=True):
            rec.input(name, array)
        reports = validate_batch(ids[:, 0], row_numbers, kinds[:, 0], values[:, 0], details)
        for table, rows in table_rows(reports).items():
            if rows:
                rec.table_rows(table, rows)
        acks = [r.report_id for r in reports]
        rec.output("ACK", np.array(acks, dtype=np.object_).reshape(-1, 1))
        return [triton_io.string_tensor(pb_utils, "ACK", acks)]
