"""The locust side of the `pipeline` load test: its options and the user that sends and records.

Importing this module registers the load test's own options (each also settable in
``locust.conf`` and as an environment variable, and shown in the web UI):

====================  ====================  =======  =============================================
option                variable              default  meaning
====================  ====================  =======  =============================================
``--batch-size``      LOCUST_BATCH_SIZE     8        events (rows) per request
``--bad-share``       LOCUST_BAD_SHARE      0.02     share of requests carrying one unscorable row
``--event-pool``      LOCUST_EVENT_POOL     5000     generator events cycled through (seeded)
``--seed``            LOCUST_SEED           7        generator seed
``--request-log``     LOCUST_REQUEST_LOG    see
                                            below    JSONL ledger of every request sent
====================  ====================  =======  =============================================

Every request carries its own id, ``load-<run>-<pid>-<n>``; what it carries comes from
:mod:`loadtest.workload`. A request with
a bad row must be refused (INVALID_ARG): it is reported to locust as ``pipeline (bad row)`` and
counts as a failure only when the server accepts it. The ledger
(``loadtest/reports/requests.jsonl`` by default; a distributed worker adds its pid) has one line
per request -- id, rows, whether a bad row was planted, the outcome -- and is what
``python -m loadtest.losscheck`` checks against the store.
"""

from __future__ import annotations

import os
import time

import tritonclient.grpc as grpcclient
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtest.ledger import DEFAULT_REQUEST_LOG, RequestLog, Sent, request_log_path
from loadtest.triton_user import TritonGrpcUser
from loadtest.workload import EventSource, LoadOptions, raw_tensor
from logging_backend.stack import launcher

MODEL = "pipeline"
OUTPUTS = ("REQUEST_ID", "PROBABILITIES", "DECISION")
REFUSED = "StatusCode.INVALID_ARGUMENT"
NAME_OK = MODEL
NAME_BAD = f"{MODEL} (bad row)"
ERROR_CHARS = 300

# ------------------------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs: object) -> None:
    parser.add_argument(
        "--batch-size", type=int, env_var="LOCUST_BATCH_SIZE", default=8,
        help="events (rows) per request to pipeline",
    )  # fmt: skip
    parser.add_argument(
        "--bad-share", type=float, env_var="LOCUST_BAD_SHARE", default=0.02,
        help="share of requests that carry one unscorable row (must be refused)",
    )  # fmt: skip
    parser.add_argument(
        "--event-pool", type=int, env_var="LOCUST_EVENT_POOL", default=5000,
        help="number of generator events cycled through",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, env_var="LOCUST_SEED", default=7, help="generator seed",
    )  # fmt: skip
    parser.add_argument(
        "--request-log", env_var="LOCUST_REQUEST_LOG", default=str(DEFAULT_REQUEST_LOG),
        help="JSONL ledger of every request sent (read by python -m loadtest.losscheck)",
    )  # fmt: skip


# ------------------------------------------------------------------------------- run state


_ledger: RequestLog | None = None
_source: EventSource | None = None
_options: LoadOptions | None = None
_run_tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
_counter = 0


@events.init.add_listener
def _on_init(environment, **_kwargs: object) -> None:
    global _ledger, _options
    _options = LoadOptions.from_parsed(environment.parsed_options)
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends nothing; its workers keep ledgers
    worker = isinstance(environment.runner, WorkerRunner)
    _ledger = RequestLog(request_log_path(_options.request_log, worker, os.getpid()))
    _ledger.open()


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs: object) -> None:
    # The web UI's start form may have changed the options since init.
    global _options, _source
    options = LoadOptions.from_parsed(environment.parsed_options)
    if _source is not None and (options.event_pool, options.seed, options.bad_share) != (
        _source.pool_size,
        _source.seed,
        _source.bad_share,
    ):
        _source = None
    _options = options


@events.test_stop.add_listener
def _on_test_stop(**_kwargs: object) -> None:
    if _ledger is not None:
        _ledger.flush()


@events.quit.add_listener
def _on_quit(**_kwargs: object) -> None:
    if _ledger is not None:
        _ledger.close()


def _next_request_id() -> str:
    global _counter
    _counter += 1
    return f"load-{_run_tag}-{os.getpid()}-{_counter}"


def _shared_source(options: LoadOptions) -> EventSource:
    global _source
    if _source is None:
        _source = EventSource(options.event_pool, options.seed, options.bad_share)
    return _source


class PipelineUser(TritonGrpcUser):
    """Sends batches of generator events to `pipeline` and records each in the ledger.

    Its ``host`` defaults to the gRPC port of the stack ``stagelog up`` started in
    ``$STAGELOG_HOME`` (``--host`` or ``host`` in locust.conf override it).
    """

    abstract = True
    model_name = MODEL
    host = f"127.0.0.1:{launcher.settings_from_stack().grpc_port}"

    def score_batch(self) -> Sent:
        """Send one batch (with a bad row in a ``--bad-share`` of requests), record the outcome."""
        options = _options or LoadOptions.from_parsed(self.environment.parsed_options)
        request_id = _next_request_id()
        rows, bad = _shared_source(options).batch(request_id, options.batch_size)
        outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
        _, error = self.infer(
            [raw_tensor(rows)],
            name=NAME_BAD if bad else NAME_OK,
            outputs=outputs,
            request_id=request_id,
            expect_status=REFUSED if bad else None,
        )
        sent = Sent(
            request_id=request_id,
            rows=len(rows),
            bad=bad,
            ok=error is None,
            status="" if error is None else str(error.status()),
            error="" if error is None else str(error.message())[:ERROR_CHARS],
        )
        if _ledger is not None:
            _ledger.write(sent)
        return sent
