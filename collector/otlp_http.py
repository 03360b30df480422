"""OTLP/HTTP transport: ``POST /v1/traces`` with protobuf or JSON bodies, optionally gzipped.

Status codes per the OTLP/HTTP specification: 200 with an ExportTraceServiceResponse,
400 malformed, 401 unauthenticated, 413 too large, 415 unsupported content type, 503 with
``Retry-After`` when spans cannot be stored now. Error bodies are a ``google.rpc.Status``
in the request's encoding.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from google.rpc import status_pb2

from sessionlens.collector import otlp
from sessionlens.collector.auth import Unauthenticated
from sessionlens.collector.component import ExportUnavailable

log = logging.getLogger("sessionlens.collector")

PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_STOP_GRACE_S = 30.0  # in-flight requests wait for their batch to be stored
_DISCARD_MAX = 4 << 20  # larger refused bodies are cut off by closing the connection


class _Reject(Exception):
    """Answer the request with ``status`` and a google.rpc.Status carrying ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Reject(400, f"body is not valid gzip: {exc}") from None
    if len(data) > limit:
        raise _Reject(413, f"decompressed body exceeds {limit} bytes")
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse connections
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request would drown the collector's log

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def _fail(self, status: int, message: str, headers: dict[str, str]) -> None:
        error = status_pb2.Status(code=status, message=message)
        if self._content_type() == JSON:
            self._send(status, json_format.MessageToJson(error).encode(), JSON, headers)
        else:
            self._send(status, error.SerializeToString(), PROTOBUF, headers)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        with self.server.request():
            try:
                self._send(200, *self._export(), {})
            except _Reject as reject:
                self._fail(reject.status, str(reject), reject.headers)

    def _discard(self, length: int) -> None:
        """Read and drop a refused body, so the client sees the answer rather than a reset."""
        self.close_connection = True  # whatever is left unread must not pass for a request
        remaining = min(length, _DISCARD_MAX)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)

    def _chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    def _length(self) -> int:
        """The Content-Length (for a chunked body: 0, its size is learned while reading)."""
        if self._chunked():
            return 0
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise _Reject(400, "bad Content-Length") from None

    def _read_chunked(self, limit: int) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (Node's OTLP exporters send these)."""
        parts, size = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _Reject(400, "malformed chunked body") from None
            if chunk == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            size += chunk
            if size > limit:
                self.close_connection = True
                raise _Reject(413, f"body exceeds {limit} bytes")
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _read_body(self, length: int, limit: int) -> bytes:
        if length > limit:
            self._discard(length)
            raise _Reject(413, f"body exceeds {limit} bytes")
        body = self._read_chunked(limit) if self._chunked() else self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            return _gunzip(body, limit)
        if encoding != "identity":
            raise _Reject(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
        return body

    def _export(self) -> tuple[bytes, str]:
        server = self.server
        length = self._length()
        if self.path.split("?", 1)[0] != PATH:
            self._discard(length)
            raise _Reject(404, f"not found: OTLP traces go to POST {PATH}")
        content_type = self._content_type()
        if content_type not in (PROTOBUF, JSON):
            self._discard(length)
            raise _Reject(415, f"unsupported Content-Type {content_type!r}: use {PROTOBUF} or {JSON}")
        try:
            project = server.exporting.authenticate(self.headers.get("Authorization"))
        except Unauthenticated as exc:
            self._discard(length)
            raise _Reject(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        body = self._read_body(length, server.max_body)
        try:
            request = otlp.parse_json(body) if content_type == JSON else otlp.parse_protobuf(body)
        except otlp.MalformedRequest as exc:
            raise _Reject(400, str(exc)) from None
        try:
            decoded = server.exporting.export(request, project)
        except ExportUnavailable as exc:
            retry = str(max(1, math.ceil(exc.retry_after)))
            raise _Reject(503, str(exc), {"Retry-After": retry}) from None
        except Exception:
            log.exception("exporting an OTLP/HTTP request failed")
            raise _Reject(500, "internal error; see the collector log") from None
        response = decoded.response()
        if content_type == JSON:
            return json_format.MessageToJson(response, indent=None).encode(), JSON
        return response.SerializeToString(), PROTOBUF

    def do_GET(self) -> None:  # noqa: N802
        self._fail(405, f"use POST {PATH}", {"Allow": "POST"})

    do_PUT = do_DELETE = do_PATCH = do_GET


class _Server(ThreadingHTTPServer):
    # Connection threads may idle in keep-alive forever: don't join them on close; requests
    # in flight are waited for by ``drain`` instead.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], exporting, max_body: int) -> None:
        self.exporting = exporting
        self.max_body = max_body
        self._inflight = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    @contextlib.contextmanager
    def request(self):
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait for the requests in flight to be answered; False if some still are."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)


class HttpServer:
    """A threaded HTTP server serving OTLP/HTTP traces for an ``Exporting``."""

    def __init__(self, config, exporting) -> None:
        self._config = config
        self._exporting = exporting
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        endpoint = self._config.endpoint
        host, _, port = endpoint.rpartition(":")
        try:
            address = (host.strip("[]") or "127.0.0.1", int(port))
            self._server = _Server(address, self._exporting, self._config.max_request_body_size)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise otlp.ListenError(
                f"OTLP/HTTP cannot listen on {endpoint}: {reason} "
                "(is another collector running? change receivers.otlp.protocols.http.endpoint)"
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otlp-http", daemon=True
        )
        self._thread.start()

    def describe(self) -> str:
        host = self._config.endpoint.rpartition(":")[0]
        return f"OTLP/HTTP {host}:{self.port}"

    def stop(self) -> None:
        """Stop accepting requests, then wait for those in flight to be answered."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if not self._server.drain(_STOP_GRACE_S):
                log.warning("OTLP/HTTP requests still in flight after %.0f s", _STOP_GRACE_S)
            self._server = None
