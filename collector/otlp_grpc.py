"""OTLP/gRPC transport: ``TraceService/Export`` on a grpcio server.

Requests arrive as raw bytes (no generated servicer) so parsing can fall back to the
lenient path for invalid UTF-8; grpcio itself handles gzip and the message size limit
(RESOURCE_EXHAUSTED). Errors follow the OTLP specification: INVALID_ARGUMENT for a
malformed request, UNAUTHENTICATED, and UNAVAILABLE with a ``google.rpc.RetryInfo`` in
the ``grpc-status-details-bin`` trailer when spans cannot be stored now.

Bounds: at most ``max_concurrent_requests`` requests are handled at once and the receiver's
budget of request bytes in flight is shared with OTLP/HTTP; past either a request gets
UNAVAILABLE with RetryInfo at once. grpcio holds a whole message before a handler runs, so
it may queue as many again; beyond that grpcio itself answers RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sessionlens.collector import otlp
from sessionlens.collector.auth import Unauthenticated
from sessionlens.collector.component import ExportUnavailable

log = logging.getLogger("sessionlens.collector")

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
EXPORT_METHOD = f"/{SERVICE}/Export"
_STOP_GRACE_S = 30.0  # in-flight requests wait for their batch to be stored


def export_stub(channel: grpc.Channel):
    """A client callable sending pre-encoded ExportTraceServiceRequest bytes over ``channel``
    and returning the decoded response (for tools and tests that must not re-encode)."""
    return channel.unary_unary(
        EXPORT_METHOD,
        request_serializer=None,
        response_deserializer=ExportTraceServiceResponse.FromString,
    )


class _Status(NamedTuple):
    """A ``grpc.Status`` (code, details, trailing metadata) for ``abort_with_status``."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def unavailable_status(message: str, retry_after: float) -> _Status:
    """UNAVAILABLE whose trailer carries RetryInfo(retry_delay=retry_after) as OTLP asks."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(max(retry_after, 0) * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return _Status(
        grpc.StatusCode.UNAVAILABLE,
        message,
        (("grpc-status-details-bin", status.SerializeToString()),),
    )


class GrpcServer:
    """One grpcio server serving TraceService/Export for an ``Exporting``."""

    def __init__(self, config, exporting) -> None:
        self._config = config
        self._exporting = exporting
        self._server: grpc.Server | None = None
        self.port = 0
        self._active = 0
        self._lock = threading.Lock()

    def _export(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        limit = self._config.max_concurrent_requests
        with self._lock:
            busy = self._active >= limit
            if not busy:
                self._active += 1
        if busy:
            context.abort_with_status(unavailable_status(
                f"the collector is handling {limit} requests already "
                "(receivers.otlp.protocols.grpc.max_concurrent_requests); retry later", 1.0,
            ))
        try:
            with self._exporting.in_flight.hold() as budget:
                if not budget.take(len(body)):
                    context.abort_with_status(unavailable_status(budget.refusal(), 1.0))
                return self._handle(body, context)
        finally:
            with self._lock:
                self._active -= 1

    def _handle(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        authorization = None
        for key, value in context.invocation_metadata():
            if key == "authorization":
                authorization = value
        try:
            project = self._exporting.authenticate(authorization)
        except Unauthenticated as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        try:
            decoded = self._exporting.export(body, project)
        except otlp.MalformedRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ExportUnavailable as exc:
            context.abort_with_status(unavailable_status(str(exc), exc.retry_after))
        except Exception:
            log.exception("exporting an OTLP/gRPC request failed")
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the collector log")
        return decoded.response().SerializeToString()

    def start(self) -> None:
        config = self._config
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        # Twice the bound: the requests past it are refused with RetryInfo by a thread of
        # their own instead of waiting, unanswered, in grpcio's queue.
        workers = 2 * max(config.max_concurrent_requests, 1)
        server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
            handlers=(handler,),
            maximum_concurrent_rpcs=workers,
            options=[
                ("grpc.max_receive_message_length", config.max_recv_msg_size_mib * 1024 * 1024),
                # grpcio sets SO_REUSEPORT by default: two collectors would share the port.
                ("grpc.so_reuseport", 0),
            ],
        )
        try:
            self.port = server.add_insecure_port(config.endpoint)
        except RuntimeError:
            self.port = 0
        if not self.port:
            server.stop(None)
            raise otlp.ListenError(
                f"OTLP/gRPC cannot listen on {config.endpoint}: address in use or invalid "
                "(is another collector running? change receivers.otlp.protocols.grpc.endpoint)"
            )
        server.start()
        self._server = server

    def describe(self) -> str:
        host = self._config.endpoint.rpartition(":")[0]
        return f"OTLP/gRPC {host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(_STOP_GRACE_S).wait()
            self._server = None

