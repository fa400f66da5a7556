"""A reusable, abstract locust user for Triton's gRPC endpoint.

Subclass :class:`TritonGrpcUser`, set ``host`` (``127.0.0.1:8001``; a ``grpc://`` or ``http://``
prefix is stripped) and call :meth:`TritonGrpcUser.infer` from tasks. Every call is timed and
reported through locust's ``request`` event, so the console, CSV and HTML reports count it.

grpc must be switched to gevent before anything creates a channel; importing this module does
that (locust has already monkey-patched the standard library by the time a locustfile loads).

Why every client is closed explicitly: with grpc's gevent integration, a channel still open when
the interpreter exits is closed from ``InferenceServerClient.__del__`` after the gevent hub has
stopped, and that close blocks forever -- a headless run then never exits after ``-t`` and
ignores SIGTERM (seen with locust 2.47, grpcio 1.85, tritonclient 2.73; py-spy shows the main
thread parked in ``grpc._channel.Channel._close``). So each user closes its client in
``on_stop``, and a ``quitting`` listener closes any client a user left open.
"""

from __future__ import annotations

from grpc.experimental import gevent as grpc_gevent

grpc_gevent.init_gevent()

import time  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import gevent  # noqa: E402
import tritonclient.grpc as grpcclient  # noqa: E402
from locust import User, events  # noqa: E402
from locust.stats import CSV_STATS_INTERVAL_SEC  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

REQUEST_TYPE = "grpc"

_open_clients: weakref.WeakSet[grpcclient.InferenceServerClient] = weakref.WeakSet()


@events.quitting.add_listener
def _close_open_clients(**_kwargs: object) -> None:
    """Close every client still open while the gevent hub still runs (see module docstring)."""
    for client in list(_open_clients):
        _close(client)


@events.quitting.add_listener
def _let_csv_catch_up(environment, **_kwargs: object) -> None:
    """Give locust's CSV writer one more turn, so that ``*_stats.csv`` counts every request.

    The writer rewrites the CSV files once a second and is never asked for a final write: without
    this the CSV misses the last second of the run (the HTML report and the console do not).
    """
    if getattr(environment.parsed_options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)


def _close(client: grpcclient.InferenceServerClient) -> None:
    _open_clients.discard(client)
    client.close()


def grpc_target(host: str | None) -> str:
    """Return the ``host:port`` tritonclient wants from a locust ``--host`` value.

    Args:
        host: What the user passed as ``--host`` (``127.0.0.1:8001``, ``grpc://127.0.0.1:8001``).

    Raises:
        ValueError: when no host was given or it has no port.
    """
    if not host:
        raise ValueError("no Triton gRPC address: pass --host, e.g. 127.0.0.1:8001")
    target = host.strip()
    for prefix in ("grpc://", "http://", "https://"):
        if target.startswith(prefix):
            target = target[len(prefix) :]
    target = target.rstrip("/")
    name, _, port = target.rpartition(":")
    if not name or not port.isdigit():
        raise ValueError(f"Triton gRPC address {host!r} is not HOST:PORT (e.g. 127.0.0.1:8001)")
    return target


class UnexpectedAnswer(Exception):
    """Reported to locust when a request that must be refused was answered."""


def reported_failure(
    error: InferenceServerException | None, expect_status: str | None
) -> Exception | None:
    """What to report to locust as the request's exception (None: a success).

    Args:
        error: What the call raised, or None when it was answered.
        expect_status: The status a refusal must carry, or None when an answer is expected.
    """
    if expect_status is None:
        return error
    if error is None:
        return UnexpectedAnswer(f"expected {expect_status}, got an answer")
    return None if str(error.status()) == expect_status else error


class TritonGrpcUser(User):
    """A locust user holding one Triton gRPC client; subclasses write the tasks.

    Attributes:
        model_name: The model :meth:`infer` calls when none is given.
        client_timeout_s: Deadline of one call; a call past it is reported as failed.
    """

    abstract = True
    model_name: str = ""
    client_timeout_s: float = 30.0

    def __init__(self, environment) -> None:  # noqa: D417 - locust's signature
        """Open the gRPC client for this user (one channel per simulated user)."""
        super().__init__(environment)
        self.client = grpcclient.InferenceServerClient(url=grpc_target(self.host))
        _open_clients.add(self.client)

    def infer(
        self,
        inputs: Sequence[grpcclient.InferInput],
        *,
        name: str | None = None,
        model_name: str | None = None,
        outputs: Sequence[grpcclient.InferRequestedOutput] | None = None,
        request_id: str = "",
        expect_status: str | None = None,
    ) -> tuple[grpcclient.InferResult | None, InferenceServerException | None]:
        """Run one inference, time it and report it to locust.

        An error from the server or the channel is returned, never raised, so that a task can
        record it and carry on. It is reported to locust as a failure -- unless the request was
        meant to be refused: with ``expect_status`` set, an error with exactly that status is a
        success and an answer is the failure.

        Args:
            inputs: The request's input tensors.
            name: The name the request is reported under (default: the model name).
            model_name: The model to call (default: :attr:`model_name`).
            outputs: Outputs to request (default: all).
            request_id: Triton request id, copied into every composing request of an ensemble.
            expect_status: The status a refusal must carry, as ``str(error.status())``
                (``"StatusCode.INVALID_ARGUMENT"``), when the request must be refused.

        Returns:
            ``(result, None)`` on success, ``(None, error)`` on failure.
        """
        model = model_name or self.model_name
        if not model:
            raise ValueError(f"{type(self).__name__}: set model_name or pass model_name=")
        result: grpcclient.InferResult | None = None
        error: InferenceServerException | None = None
        length = 0
        start = time.perf_counter()
        try:
            result = self.client.infer(
                model,
                list(inputs),
                outputs=list(outputs) if outputs is not None else None,
                request_id=request_id,
                client_timeout=self.client_timeout_s,
            )
            length = result.get_response().ByteSize()
        except InferenceServerException as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name or model,
            response_time=elapsed_ms,
            response_length=length,
            exception=reported_failure(error, expect_status),
            context={"request_id": request_id},
        )
        return result, error

    def on_stop(self) -> None:
        """Close the channel so that no gRPC call or poller outlives the run.

        A subclass overriding this must call ``super().on_stop()``.
        """
        _close(self.client)
