"""One LLM call: its GenAI span from the request to the end of the (possibly streamed) body.

Every entry point here swallows its own failures: telemetry never breaks the call, and it
only ever sees bytes the application itself reads.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from sessionlens import conventions as c
from sessionlens.instrumentation.content import input_attributes, output_attributes
from sessionlens.instrumentation.context import current_attributes
from sessionlens.instrumentation.providers import Endpoint, body_user, recognise, request_attributes
from sessionlens.instrumentation.responses import ResponseReader
from sessionlens.instrumentation.sse import EventSplitter

_log = logging.getLogger(__name__)

RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The OpenAI and Anthropic SDKs number their retries in this request header."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A streamed non-SSE body is kept up to this size for its usage; a larger one is not parsed."""

# Lower-cased header -> (attribute, rank among the headers of that attribute; lower wins).
_HEADER_RANK = {
    header.encode(): (key, rank) for key, headers in c.HEADER_ATTRIBUTES.items() for rank, header in enumerate(headers)
}
_PROPERTY_PREFIXES = tuple(prefix.encode() for prefix in c.PROPERTY_HEADER_PREFIXES)
_RETRY_COUNT = RETRY_COUNT_HEADER.encode()
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _is_inference_span(span: Span) -> bool:
    attributes = getattr(span, "attributes", None)
    if not attributes or not span.is_recording():
        return False
    operation = attributes.get(c.OPERATION)
    if operation is not None:
        return operation in c.LLM_OPERATIONS
    return c.LLM_REQUEST_TYPE in attributes


def _request_json(request: Any) -> dict[str, Any]:
    try:
        content = request.content
    except Exception:  # a streaming request body that was never read: nothing to parse
        return {}
    if not content or content[:1] != b"{":
        return {}
    body = json.loads(content.decode())
    return body if isinstance(body, dict) else {}


def _lowered_headers(headers: Any) -> Any:
    # httpx and httpx2 keep (raw, lower-cased, value) byte triples; reading them spares
    # decoding every header of every call. multi_items() is the public fallback.
    triples = getattr(headers, "_list", None)
    if isinstance(triples, list):
        return triples
    return [(None, k.lower().encode(), v.encode()) for k, v in headers.multi_items()]


def identity_attributes(headers: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Session/user/agent/run/request attributes of one request: context > headers > body."""
    found: dict[str, tuple[int, bytes]] = {}
    attrs: dict[str, Any] = {}
    user = body_user(body)
    if user is not None:
        attrs[c.USER_ID] = user
    for _, name, value in _lowered_headers(headers):
        ranked = _HEADER_RANK.get(name)
        if ranked is not None:
            key, rank = ranked
            if key not in found or rank < found[key][0]:
                found[key] = (rank, value)
        elif name.startswith(_PROPERTY_PREFIXES):
            prop = c.property_attribute(name.decode("latin-1"))
            if prop is not None:
                attrs[prop] = value.decode("utf-8", "replace")
        elif name == _RETRY_COUNT and value.isdigit() and value != b"0":
            attrs[c.HTTP_RESEND_COUNT] = int(value)
    for key, (_, value) in found.items():
        attrs[key] = value.decode("utf-8", "replace")
    attrs.update(current_attributes())
    return attrs


class CallTracer:
    """Starts the span of each LLM request, or enriches a GenAI span that is already current."""

    _CACHE_SIZE = 4096

    def __init__(self, tracer: Tracer, capture: bool, capture_limit: int) -> None:
        self._tracer = tracer
        self.capture = capture
        self.capture_limit = capture_limit
        # (host, port, raw path) -> the endpoint and its constant span attributes, or None
        # for other traffic: recognising a URL once keeps string work off repeated calls.
        self._endpoints: dict[tuple[bytes, int | None, bytes], tuple[Endpoint, dict[str, Any]] | None] = {}

    def _endpoint(self, url: Any) -> tuple[Endpoint, dict[str, Any]] | None:
        key = (url.raw_host, url.port, url.raw_path)
        try:
            return self._endpoints[key]
        except KeyError:
            pass
        endpoint = recognise(url.host, url.path)
        found = None
        if endpoint is not None:
            found = endpoint, {
                c.PROVIDER: endpoint.provider,
                c.OPERATION: endpoint.operation,
                c.SERVER_ADDRESS: url.host,
                c.SERVER_PORT: url.port or _DEFAULT_PORTS.get(url.scheme, 443),
            }
        if len(self._endpoints) >= self._CACHE_SIZE:
            self._endpoints.clear()
        self._endpoints[key] = found
        return found

    def begin(self, request: Any) -> LLMCall | None:
        """The call a request starts, or None when it is no LLM call or one already traced."""
        try:
            found = self._endpoint(request.url)
            if found is None:
                return None
            endpoint, constant = found
            body = _request_json(request)
            identity = identity_attributes(request.headers, body)
            current = trace.get_current_span()
            if _is_inference_span(current):
                current.set_attributes(identity)
                return None
            attributes = {**constant, **request_attributes(endpoint, body), **identity}
            if self.capture:
                attributes.update(input_attributes(endpoint, body, self.capture_limit))
            model = attributes.get(c.REQUEST_MODEL)
            name = f"{endpoint.operation} {model}" if model else endpoint.operation
            span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            token = context.attach(trace.set_span_in_context(span))
            return LLMCall(span, token, ResponseReader(endpoint, self.capture), self.capture_limit)
        except Exception:
            _log.debug("sessionlens: could not start the span of an LLM call", exc_info=True)
            return None


class LLMCall:
    """The span of one LLM call, from the request until its response body ends."""

    __slots__ = (
        "_span",
        "_token",
        "_reader",
        "_limit",
        "_start",
        "_ended",
        "_events",
        "_decoder",
        "_body",
        "_body_size",
        "_pending",
        "_parsed_first",
        "_broken",
        "_status",
        "_awaiting_first",
    )

    def __init__(self, span: Span, token: object, reader: ResponseReader, capture_limit: int) -> None:
        self._span = span
        self._token = token
        self._reader = reader
        self._limit = capture_limit
        self._start = time.perf_counter()
        self._ended = False
        self._events: EventSplitter | None = None
        self._decoder: Any = None
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._pending: bytes | None = None
        self._parsed_first = False
        self._broken = False
        self._status: int | None = None
        self._awaiting_first = False

    def sent(self) -> None:
        """The request has been answered (or failed): the call's span is no longer current."""
        try:
            context.detach(self._token)  # type: ignore[arg-type]
        except Exception:
            _log.debug("sessionlens: could not detach the call context", exc_info=True)

    def failed(self, error: BaseException) -> None:
        """The request raised (a timeout, a connection error…): end the span with the error."""
        self._end(error=error)

    def responded(self, response: Any, wrap_stream: Any) -> None:
        """Record the response; end now if its body was read, else when the app finishes reading it."""
        try:
            status = response.status_code
            if response.is_closed:
                self._parse_body(response.content, response.headers.get("content-type", ""))
                self._end(status=status)
                return
            headers = response.headers
            encoding = headers.get("content-encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
            elif encoding not in ("", "identity"):
                self._broken = True  # brotli/zstd bodies: let them pass, unparsed
            if headers.get("content-type", "").startswith("text/event-stream"):
                self._events = EventSplitter()
                self._awaiting_first = True
            else:
                self._body = []
            self._status = status
            response.stream = wrap_stream(response.stream, self)
        except Exception:
            _log.debug("sessionlens: could not record an LLM response", exc_info=True)
            self._end()

    # --- the body, as the application reads it ----------------------------------------

    def chunk(self, data: bytes) -> None:
        """A chunk of the body, just read by the application."""
        if not data:
            return
        try:
            if self._awaiting_first:
                self._awaiting_first = False
                self._span.set_attribute(c.TIME_TO_FIRST_CHUNK, time.perf_counter() - self._start)
            if self._broken:
                return
            if self._decoder is not None:
                data = self._decoder.decompress(data)
            if self._events is not None:
                for payload in self._events.feed(data):
                    self._event(payload)
            elif self._body is not None and self._body_size < MAX_BODY_BYTES:
                self._body.append(data)
                self._body_size += len(data)
        except Exception:
            self._broken = True
            _log.debug("sessionlens: could not parse an LLM response stream", exc_info=True)

    def _event(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            return
        reader = self._reader
        if not self._parsed_first or reader.capture or reader.interesting.search(payload):
            self._parsed_first = True
            self._pending = None
            reader.update(json.loads(payload))
        else:
            # Kept in case it is the last: the final event carries the usage of some APIs.
            self._pending = payload

    def finished(self, error: BaseException | None = None) -> None:
        """The application read the body to its end, closed it, or failed reading it."""
        if self._ended:
            return
        try:
            if not self._broken:
                if self._pending is not None:
                    self._reader.update(json.loads(self._pending))
                if self._body is not None and self._body_size < MAX_BODY_BYTES:
                    body = b"".join(self._body)
                    if self._decoder is not None:
                        body = self._decoder.decompress(body) + self._decoder.flush()
                        self._decoder = None
                    self._parse_body(body, "application/json")
        except Exception:
            _log.debug("sessionlens: could not parse the end of an LLM response", exc_info=True)
        self._end(status=self._status, error=error)

    def _parse_body(self, content: bytes, content_type: str) -> None:
        if content and "json" in content_type:
            try:
                self._reader.update(json.loads(content.decode()))
            except ValueError:
                _log.debug("sessionlens: LLM response body is not JSON")

    def _end(self, status: int | None = None, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        span = self._span
        try:
            reader = self._reader
            attributes = reader.result()
            if reader.capture:
                attributes.update(output_attributes(reader.text, reader.output, reader.finish_reasons, self._limit))
            span.set_attributes(attributes)
            if error is not None:
                span.set_attribute(c.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
            elif status is not None and status >= 400:
                span.set_attribute(c.ERROR_TYPE, str(status))
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        except Exception:
            _log.debug("sessionlens: could not finish the span of an LLM call", exc_info=True)
        finally:
            span.end()
