"""OTLP/HTTP transport: ``POST /v1/traces`` with protobuf or JSON bodies, optionally gzipped,
served by Starlette on the collector's one ASGI server stack (``collector.asgi``: uvicorn).

Status codes per the OTLP/HTTP specification: 200 with an ExportTraceServiceResponse,
400 malformed, 401 unauthenticated, 408 body not sent in time, 413 too large, 415
unsupported content type, 503 with ``Retry-After`` when spans cannot be stored now or the
collector holds as many request bytes as it may. Error bodies are a ``google.rpc.Status``
in the request's encoding.

What the server stack gives: strict HTTP/1.1 parsing by h11 (a negative or malformed
Content-Length or chunk size is a 400, never a guess), a deadline for each request head,
an idle keep-alive timeout, bounded connections and concurrent requests, a real listen
backlog. What this module adds: a deadline for reading the body, the body size limit
(also after gunzip, every gzip member decoded), and the receiver's shared budget of request
bytes in flight. Decompression, parsing and export run on a worker thread, never on the
event loop.
"""

from __future__ import annotations

import logging
import math
import zlib

import anyio
from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sessionlens.collector import asgi, otlp
from sessionlens.collector.auth import Unauthenticated
from sessionlens.collector.component import ExportUnavailable

log = logging.getLogger("sessionlens.collector")

PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_DISCARD_MAX = 4 << 20  # a refused body up to this size is read, so the client sees the answer
_GZIP_MAGIC = b"\x1f\x8b"


class _Reject(Exception):
    """Answer the request with ``status`` and a google.rpc.Status carrying ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def gunzip(body: bytes, limit: int) -> bytes:
    """Every member of a gzip body, concatenated (RFC 1952 allows several); at most ``limit`` bytes."""
    parts, size = [], 0
    while body:
        if not body.startswith(_GZIP_MAGIC):
            raise _Reject(400, "body is not valid gzip: data after the last gzip member")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, limit + 1 - size)
        except zlib.error as exc:
            raise _Reject(400, f"body is not valid gzip: {exc}") from None
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            raise _Reject(413, f"decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise _Reject(400, "body is not valid gzip: truncated")
        parts.append(data)
        body = inflater.unused_data
    return b"".join(parts)


def _content_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _status_response(status: int, message: str, content_type: str, headers: dict[str, str]) -> Response:
    error = status_pb2.Status(code=status, message=message)
    if content_type == JSON:
        return Response(json_format.MessageToJson(error).encode(), status, headers, media_type=JSON)
    return Response(error.SerializeToString(), status, headers, media_type=PROTOBUF)


class _Traces:
    """The ``/v1/traces`` endpoint for one ``Exporting`` and its limits."""

    def __init__(self, config, exporting) -> None:
        self.exporting = exporting
        self.max_body = config.max_request_body_size
        self.read_timeout = config.read_timeout

    async def endpoint(self, request: Request) -> Response:
        content_type = _content_type(request)
        try:
            if request.method != "POST":
                raise _Reject(405, f"use POST {PATH}", {"Allow": "POST"})
            return await self._export(request, content_type)
        except _Reject as reject:
            headers = dict(reject.headers)
            # A client refused for load gets its answer even for a big body: it will retry.
            if not await self._discard(request, self.max_body if reject.status == 503 else _DISCARD_MAX):
                headers["Connection"] = "close"  # what is left unread must not pass for a request
            return _status_response(reject.status, str(reject), content_type, headers)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening for the answer

    async def _discard(self, request: Request, limit: int) -> bool:
        """Read and drop what is left of a refused body (up to ``limit`` bytes and the read
        deadline), so the client reads the answer instead of a reset; True when it was all
        read, so the connection can be reused."""
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > limit:
            return False
        dropped = 0
        try:
            with anyio.fail_after(self.read_timeout):
                async for chunk in request.stream():
                    dropped += len(chunk)
                    if dropped > limit:
                        return False
        except (TimeoutError, ClientDisconnect, RuntimeError):
            return False  # RuntimeError: the stream was consumed already
        return True

    async def _read_body(self, request: Request, budget) -> bytes:
        declared = request.headers.get("content-length")  # h11 checked it is a number
        if declared is not None:
            if int(declared) > self.max_body:
                raise _Reject(413, f"body exceeds {self.max_body} bytes")
            if not budget.take(int(declared)):  # refused before a byte is read
                raise _Reject(503, budget.refusal(), {"Retry-After": "1"})
        parts, size = [], 0
        try:
            with anyio.fail_after(self.read_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body:
                        raise _Reject(413, f"body exceeds {self.max_body} bytes")
                    if declared is None and not budget.take(len(chunk)):  # chunked
                        raise _Reject(503, budget.refusal(), {"Retry-After": "1"})
                    parts.append(chunk)
        except TimeoutError:
            raise _Reject(408, f"the body was not received within {self.read_timeout:g} s") from None
        return b"".join(parts)

    async def _export(self, request: Request, content_type: str) -> Response:
        if content_type not in (PROTOBUF, JSON):
            raise _Reject(415, f"unsupported Content-Type {content_type!r}: use {PROTOBUF} or {JSON}")
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ("gzip", "identity"):
            raise _Reject(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
        try:
            project = self.exporting.authenticate(request.headers.get("authorization"))
        except Unauthenticated as exc:
            raise _Reject(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        with self.exporting.in_flight.hold() as budget:
            body = await self._read_body(request, budget)
            return await run_in_threadpool(self._handle, body, encoding, content_type, project, budget)

    def _handle(self, body: bytes, encoding: str, content_type: str, project, budget) -> Response:
        """Decompress, parse and export on a worker thread."""
        if encoding == "gzip":
            body = gunzip(body, self.max_body)
            if not budget.take(len(body)):
                raise _Reject(503, budget.refusal(), {"Retry-After": "1"})
        try:
            if content_type == JSON:  # the pipeline takes protobuf bytes
                body = otlp.parse_json(body).SerializeToString()
            decoded = self.exporting.export(body, project)
        except otlp.MalformedRequest as exc:
            raise _Reject(400, str(exc)) from None
        except ExportUnavailable as exc:
            retry = str(max(1, math.ceil(exc.retry_after)))
            raise _Reject(503, str(exc), {"Retry-After": retry}) from None
        except Exception:
            log.exception("exporting an OTLP/HTTP request failed")
            raise _Reject(500, "internal error; see the collector log") from None
        response = decoded.response()
        if content_type == JSON:
            return Response(json_format.MessageToJson(response, indent=None).encode(), 200, media_type=JSON)
        return Response(response.SerializeToString(), 200, media_type=PROTOBUF)


def _not_found(request: Request, exc) -> Response:
    return _status_response(404, f"not found: OTLP traces go to POST {PATH}", _content_type(request), {})


class HttpServer:
    """OTLP/HTTP traces for an ``Exporting``, on an :class:`asgi.AsgiServer`."""

    def __init__(self, config, exporting) -> None:
        self._config = config
        traces = _Traces(config, exporting)
        app = Starlette(
            routes=[Route(PATH, traces.endpoint, methods=["POST", "GET", "PUT", "DELETE", "PATCH"])],
            exception_handlers={404: _not_found},
        )
        self._server = asgi.AsgiServer(
            app,
            config.endpoint,
            name="OTLP/HTTP",
            limits=asgi.Limits(
                max_connections=config.max_connections,
                max_concurrent_requests=config.max_concurrent_requests,
                backlog=config.backlog,
                keep_alive_timeout=config.idle_timeout,
                request_head_timeout=config.read_header_timeout,
            ),
        )

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        try:
            self._server.start()
        except otlp.ListenError as exc:
            raise otlp.ListenError(
                f"{exc} (is another collector running? change receivers.otlp.protocols.http.endpoint)"
            ) from None

    def describe(self) -> str:
        return self._server.describe()

    def stop(self) -> None:
        """Stop accepting requests, then wait for those in flight to be answered."""
        self._server.stop()
