"""The base of every stage adapter: one response per request, in order, bad input coded.

A stage's ``model.py`` subclasses :class:`StageModel`, sets ``pb`` (the stub's
``triton_python_backend_utils``) and ``row_input``, and keeps only what is its own: ``setup``
(one-time work from the model config) and ``run`` (one request: tensors in, tensors out,
arrows recorded on ``rec``). Everything else — the request loop, the stage log, the request
id (and its one rule, riskpipe.limits), turning a bad row into an INVALID_ARG response that
names it, keeping one request's unexpected failure from failing the others — lives here once.
"""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import Any

from adapters.triton_io import (
    InputError,
    error_response,
    internal_error_response,
    model_parameters,
    request_id,
    row_count,
)
from logging_backend.capture.stage import StageLog
from riskpipe.limits import request_id_problem
from riskpipe.schema import CLASSES, RowError


class StageModel:
    """A Triton Python-backend model whose requests are scored one by one.

    Class attributes a subclass sets:
        pb: ``triton_python_backend_utils`` (a stand-in in unit tests).
        row_input: the input whose first dimension is the request's row count.
        errors: exceptions that mean "this request's input is bad" (INVALID_ARG for that
            request only; the rest of the batch carries on).
    """

    pb: ModuleType
    row_input: str = ""
    errors: tuple[type[BaseException], ...] = (InputError, RowError)
    keep_data_when_logging_off = False
    # Entry points (preprocess: the `pipeline` ensemble) refuse ids that break the one rule of
    # riskpipe.limits, which feedback applies to the ids it is told about.
    check_request_id = False

    def initialize(self, args: dict[str, Any]) -> None:
        """Parse the config once, run the stage's ``setup``, open its stage log."""
        self.name = str(args["model_name"])
        self.params = model_parameters(args)
        self.setup(args)
        self.log = self.open_log(args)

    def setup(self, args: dict[str, Any]) -> None:
        """The stage's own one-time work (artifacts, settings from ``self.params``)."""

    def open_log(self, args: dict[str, Any], gpu: Any = None) -> Any:
        """The stage log of this instance; class names are the workload's."""
        return StageLog.from_triton_args(
            args, gpu=gpu, class_names=CLASSES, keep_data=self.keep_data_when_logging_off
        )

    def request_id(self, request: Any) -> str:
        """The id every record of ``request`` carries (the ``REQUEST_ID`` tensor, else Triton's)."""
        return request_id(self.pb, request)

    def run(self, request: Any, rec: Any) -> list[Any]:
        """Score one request: return its output tensors; record its arrows on ``rec``."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; a bad request gets its coded error alone.

        Whatever else one request raises (a bug, input nobody foresaw) fails that request
        alone with INTERNAL, its traceback in the server log and never in the reply: the other
        clients' requests of the batch are answered.
        """
        responses = []
        for request in requests:
            try:
                responses.append(self._execute_one(request))
            except Exception as exc:
                responses.append(internal_error_response(self.pb, self.name, exc))
        return responses

    def _execute_one(self, request: Any) -> Any:
        rid, problem = self._checked_request_id(request)
        rows = row_count(self.pb, request, self.row_input)
        with self.log.request(rid, rows=rows) as rec:
            if problem:
                rec.fail(problem)
                return error_response(self.pb, problem)
            try:
                outputs = self.run(request, rec)
            except self.errors as exc:
                rec.fail(str(exc))
                return error_response(self.pb, str(exc))
            return self.pb.InferenceResponse(output_tensors=outputs)

    def _checked_request_id(self, request: Any) -> tuple[str, str | None]:
        """The request id and, when the stage checks ids and this one breaks the rule, why.

        A refused id is not stored (it may be 100 KB): a digest of it names the refusal.
        """
        rid = self.request_id(request)
        if not self.check_request_id:
            return rid, None
        problem = request_id_problem(rid)
        if problem is None:
            return rid, None
        digest = hashlib.sha256(rid.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"invalid-{digest}", f"field 'request_id': {problem}"

    def finalize(self) -> None:
        """Flush the stage log."""
        self.log.close()
