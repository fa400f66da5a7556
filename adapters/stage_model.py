"""The base of every stage adapter: one response per request, in order, bad input coded.

A stage's ``model.py`` subclasses :class:`StageModel`, sets ``pb`` (the stub's
``triton_python_backend_utils``) and ``row_input``, and keeps only what is its own: ``setup``
(one-time work from the model config) and ``run`` (one request: tensors in, tensors out,
arrows recorded on ``rec``). Everything else — the request loop, the stage log, the request
id, turning a bad row into an INVALID_ARG response that names it — lives here once.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from adapters.triton_io import InputError, error_response, model_parameters, request_id, row_count
from logging_backend.capture.stage import StageLog
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
        """One response per request, in order; a bad request gets its coded error alone."""
        responses = []
        for request in requests:
            rows = row_count(self.pb, request, self.row_input)
            with self.log.request(self.request_id(request), rows=rows) as rec:
                try:
                    outputs = self.run(request, rec)
                except self.errors as exc:
                    rec.fail(str(exc))
                    responses.append(error_response(self.pb, str(exc)))
                    continue
                responses.append(self.pb.InferenceResponse(output_tensors=outputs))
        return responses

    def finalize(self) -> None:
        """Flush the stage log."""
        self.log.close()
