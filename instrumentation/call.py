"""One LLM call: its GenAI span from the request to the end of the (possibly streamed) body.

On the call path little happens: the request is recognised, its bytes and the session
context are kept, the body chunks the application reads are kept. The finisher thread
parses request and response, sets the attributes and ends the span with the times the
call really had. The span itself starts on the call path only when an instrumented
transport needs it current (to be the parent of the HTTP span and of the trace context
sent); otherwise the finisher starts it, with the call's start time and context.
Every entry point swallows its own failures: telemetry never breaks the call, and it
only sees bytes the application reads.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
import zlib
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from sessionlens import conventions as c
from sessionlens.instrumentation.content import input_attributes, output_attributes
from sessionlens.instrumentation.context import current_attributes
from sessionlens.instrumentation.finisher import FINISHER
from sessionlens.instrumentation.identity import REQUESTS, identity_of
from sessionlens.instrumentation.providers import Endpoint, body_user, recognise, request_attributes
from sessionlens.instrumentation.responses import ResponseReader
from sessionlens.instrumentation.spanattrs import put
from sessionlens.instrumentation.sse import event_payloads

_log = logging.getLogger(__name__)

RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The OpenAI and Anthropic SDKs number their retries in this request header."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A streamed body is kept up to this size for its usage; a larger one is not parsed."""

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


def _request_content(request: Any) -> bytes:
    try:
        return request.content
    except Exception:  # a streaming request body that was never read: nothing to parse
        return b""


def _json_object(content: bytes) -> dict[str, Any]:
    if not content or content[:1] != b"{":
        return {}
    try:
        body = json.loads(content.decode())
    except ValueError:  # not JSON after all: the headers and the context still count
        return {}
    return body if isinstance(body, dict) else {}


def _lowered_headers(headers: Any) -> list[tuple[Any, bytes, bytes]]:
    # httpx and httpx2 keep (raw, lower-cased, value) byte triples; reading them spares
    # decoding every header of every call. multi_items() is the public fallback.
    triples = getattr(headers, "_list", None)
    if isinstance(triples, list):
        return list(triples)
    return [(None, k.lower().encode(), v.encode()) for k, v in headers.multi_items()]


def identity_attributes(headers: Any, body: dict[str, Any], scope: Mapping[str, str]) -> dict[str, Any]:
    """Session/user/agent/run/request attributes of one request: ``scope`` (the context) > headers > body."""
    found: dict[str, tuple[int, bytes]] = {}
    attrs: dict[str, Any] = {}
    user = body_user(body)
    if user is not None:
        attrs[c.USER_ID] = user
    for _, name, value in headers:
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
    attrs.update(scope)
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

    def begin(self, request: Any, parentable: bool) -> LLMCall | None:
        """The call a request starts, or None when it is no LLM call or one already traced.

        ``parentable``: something below (an instrumented transport) may start spans or send
        trace context during the request, so the LLM span must exist and be current now.
        Otherwise the finisher starts it later, with this moment's start time and context.
        """
        try:
            found = self._endpoint(request.url)
            if found is None:
                return None
            endpoint, constant = found
            current = trace.get_current_span()
            if _is_inference_span(current):
                # Someone else's span: it may end before the finisher runs, so enrich it now.
                body = _json_object(_request_content(request))
                current.set_attributes(
                    identity_attributes(_lowered_headers(request.headers), body, current_attributes())
                )
                return None
            # The request this call serves, if any: its identity is read when the call ends.
            root = REQUESTS.root(current.get_span_context().trace_id) if REQUESTS.serving else None
            if not parentable:
                return LLMCall(self, endpoint, constant, request, None, None, root)
            span = self._tracer.start_span(endpoint.operation, kind=SpanKind.CLIENT, attributes=constant)
            token = context.attach(trace.set_span_in_context(span))
            return LLMCall(self, endpoint, constant, request, span, token, root)
        except Exception:
            _log.debug("sessionlens: could not start the span of an LLM call", exc_info=True)
            return None

    def start_late(self, name: str, attributes: dict[str, Any], parent: Context, start_time: int) -> Span:
        """Start a call's span on the finisher thread, as of ``start_time`` under ``parent``."""
        return self._tracer.start_span(name, parent, SpanKind.CLIENT, attributes, start_time=start_time)

    def request_attributes(
        self, endpoint: Endpoint, content: bytes, headers: Any, scope: Mapping[str, str]
    ) -> tuple[str, dict[str, Any]]:
        """The span name and the request-side attributes of a call (on the finisher thread)."""
        body = _json_object(content)
        attributes = request_attributes(endpoint, body)
        attributes.update(identity_attributes(headers, body, scope))
        if self.capture:
            attributes.update(input_attributes(endpoint, body, self.capture_limit))
        model = attributes.get(c.REQUEST_MODEL)
        return (f"{endpoint.operation} {model}" if model else endpoint.operation), attributes


class LLMCall:
    """The span of one LLM call, from the request until its response body ends."""

    __slots__ = (
        "_calls",
        "_endpoint",
        "_constant",
        "_span",
        "_token",
        "_root",
        "_parent",
        "_vars",
        "_start_time",
        "_content",
        "_headers",
        "_scope",
        "_start",
        "_first",
        "_chunks",
        "_size",
        "_response_headers",
        "_decoded",
        "_status",
        "_ended",
    )

    def __init__(
        self,
        calls: CallTracer,
        endpoint: Endpoint,
        constant: dict[str, Any],
        request: Any,
        span: Span | None,
        token: object,
        root: Span | None = None,
    ) -> None:
        self._calls = calls
        self._endpoint = endpoint
        self._constant = constant
        self._span = span
        self._token = token
        self._root = root
        if span is None:
            # What the finisher needs to start the span as if it had started now, here.
            self._parent = context.get_current()
            self._vars = contextvars.copy_context()
            self._start_time = time.time_ns()
        # Kept as they are now: the finisher reads them after the call has moved on.
        self._content = _request_content(request)
        self._headers = _lowered_headers(request.headers)
        self._scope = current_attributes()
        self._start = time.perf_counter()
        self._first: float | None = None
        self._chunks: list[bytes] | None = None
        self._size = 0
        self._response_headers: Any = None
        self._decoded = False
        self._status: int | None = None
        self._ended = False

    def sent(self) -> None:
        """The request has been answered (or failed): the call's span is no longer current."""
        if self._token is None:
            return
        try:
            context.detach(self._token)  # type: ignore[arg-type]
        except Exception:
            _log.debug("sessionlens: could not detach the call context", exc_info=True)

    def failed(self, error: BaseException) -> None:
        """The request raised (a timeout, a connection error…): end the span with the error."""
        self._finish(error)

    def responded(self, response: Any, wrap_stream: Any) -> None:
        """Record the response; end now if its body was read, else when the app finishes reading it."""
        try:
            self._status = response.status_code
            self._response_headers = response.headers
            if response.is_closed:
                self._chunks = [response.content]
                self._decoded = True  # read by the client, content-encoding undone
                self._finish()
                return
            self._chunks = []
            response.stream = wrap_stream(response.stream, self)
        except Exception:
            _log.debug("sessionlens: could not record an LLM response", exc_info=True)
            self._finish()

    def chunk(self, data: bytes) -> None:
        """A chunk of the body, just read by the application: kept for the finisher."""
        if self._first is None:
            self._first = time.perf_counter()
        chunks = self._chunks
        if chunks is not None and data:
            self._size += len(data)
            if self._size <= MAX_BODY_BYTES:
                chunks.append(data)
            else:
                self._chunks = None  # too big to keep: the span goes without response details

    def finished(self, error: BaseException | None = None) -> None:
        """The application read the body to its end, closed it, or failed reading it."""
        self._finish(error)

    def _finish(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        end_time = time.time_ns()
        FINISHER.submit(lambda: self._complete(end_time, error))

    # --- on the finisher thread ---------------------------------------------------------

    def _complete(self, end_time: int, error: BaseException | None) -> None:
        attributes: dict[str, Any] = {}
        name = self._endpoint.operation
        try:
            name, attributes = self._calls.request_attributes(self._endpoint, self._content, self._headers, self._scope)
        except Exception:
            _log.debug("sessionlens: could not read an LLM request", exc_info=True)
        if REQUESTS.serving:
            attributes[c.SERVES_REQUESTS] = True
            try:  # below what the call says itself: the request's identity as recorded by now
                attributes.update(identity_of(self._root, attributes))
            except Exception:
                _log.debug("sessionlens: could not read the request's identity", exc_info=True)
        span = self._span
        if span is None:
            # In the call's own contextvars, so processors reading them see the app's context;
            # started with the attributes known before the request, as on the call path.
            span = self._vars.run(self._calls.start_late, name, self._constant, self._parent, self._start_time)
        else:
            span.update_name(name)
        try:
            attributes.update(self._response_attributes())
        except Exception:  # a body that does not parse loses its own details only
            _log.debug("sessionlens: could not read an LLM response", exc_info=True)
        try:
            status = self._status
            if error is not None:
                attributes[c.ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
            elif status is not None and status >= 400:
                attributes[c.ERROR_TYPE] = str(status)
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            put(span, attributes)
        finally:
            span.end(end_time)

    def _response_attributes(self) -> dict[str, Any]:
        reader = ResponseReader(self._endpoint, self._calls.capture)
        attributes: dict[str, Any] = {}
        if self._read_body(reader) and self._first is not None:
            attributes[c.TIME_TO_FIRST_CHUNK] = self._first - self._start
        attributes.update(reader.result())
        if reader.capture:
            attributes.update(
                output_attributes(reader.text, reader.output, reader.finish_reasons, self._calls.capture_limit)
            )
        return attributes

    def _read_body(self, reader: ResponseReader) -> bool:
        """Feed the body to ``reader``; True when it was a server-sent-events stream."""
        chunks = self._chunks
        if not chunks:
            return False
        headers = self._response_headers
        body = b"".join(chunks)
        if headers is not None:
            encoding = "" if self._decoded else headers.get("content-encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                body = zlib.decompress(body, zlib.MAX_WBITS | 32)
            elif encoding not in ("", "identity"):
                return False  # brotli/zstd: let it pass unparsed
            if headers.get("content-type", "").startswith("text/event-stream"):
                _read_events(reader, event_payloads(body))
                return True
        if body[:1] in (b"{", b"["):
            reader.update(json.loads(body.decode()))
        return False


def _read_events(reader: ResponseReader, payloads: list[bytes]) -> None:
    """Give ``reader`` the first event, the last (some APIs' usage) and those it needs in between."""
    events = [payload for payload in payloads if payload != b"[DONE]"]
    last = len(events) - 1
    for index, payload in enumerate(events):
        if index == 0 or index == last or reader.capture or reader.interesting.search(payload):
            reader.update(json.loads(payload))
