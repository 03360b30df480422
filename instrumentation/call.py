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
from operator import itemgetter
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
from sessionlens.instrumentation.sse import event_payloads, selected_payloads

_log = logging.getLogger(__name__)

RETRY_COUNT_HEADER = "x-stainless-retry-count"
"""The OpenAI and Anthropic SDKs number their retries in this request header."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A streamed body is kept up to this size for its usage; a larger one is not parsed."""
SCAN_FROM_BYTES = 4096
"""From this size on, a stream's events are found by scanning its body (a stream of 300
tokens: 2.1M instructions instead of 4.8M); below it, splitting every event costs less."""

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


_scan = json.JSONDecoder().scan_once
"""The C scanner ``json.loads`` runs in the end, without its Python layers (~9k instructions a call)."""


def _parse(text: str) -> Any:
    """``json.loads(text)``: a lone object or array goes straight to the scanner."""
    if text[:1] in ("{", "["):
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # a missing value: json.loads says where, as a JSONDecodeError
            end = -1
        if end == len(text):
            return value
    return json.loads(text)  # whitespace around, extra data, bad JSON: its own handling


def _parse_bytes(data: bytes) -> Any:
    """``json.loads(data)``: UTF-8 text (how json.loads would read it) goes to ``_parse``."""
    if data[:1] in (b"{", b"[") and data[1:2] != b"\x00":  # a NUL second byte: UTF-16/32
        return _parse(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)


def _json_object(content: bytes) -> dict[str, Any]:
    if not content or content[:1] != b"{":
        return {}
    try:
        body = _parse(content.decode())
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


_PROPERTY, _RESEND, _RANKED = range(3)
_PLANS: dict[tuple[bytes, ...], tuple[tuple[int, int, str], ...]] = {}
_PLANS_SIZE = 1024
_name_of = itemgetter(1)
_value_of = itemgetter(2)


def _header_plan(names: tuple[bytes, ...]) -> tuple[tuple[int, int, str], ...]:
    """What reading headers named ``names`` (lower-cased, in order) does: (index, step, key) steps.

    The steps are the attribute assignments a header-by-header reading makes, in its order:
    property and retry headers as they come, then each ranked attribute once, from the
    header of lowest rank (the first of equal rank). They depend on the names alone, and a
    client sends the same names call after call: planned once, they spare each call a
    Python loop over all its headers.
    """
    steps: list[tuple[int, int, str]] = []
    found: dict[str, tuple[int, int]] = {}  # attribute -> (rank, index of its header)
    for index, name in enumerate(names):
        ranked = _HEADER_RANK.get(name)
        if ranked is not None:
            key, rank = ranked
            if key not in found or rank < found[key][0]:
                found[key] = (rank, index)
        elif name.startswith(_PROPERTY_PREFIXES):
            prop = c.property_attribute(name.decode("latin-1"))
            if prop is not None:
                steps.append((index, _PROPERTY, prop))
        elif name == _RETRY_COUNT:
            steps.append((index, _RESEND, c.HTTP_RESEND_COUNT))
    steps.extend((index, _RANKED, key) for key, (_, index) in found.items())
    return tuple(steps)


def identity_attributes(
    headers: list[tuple[Any, bytes, bytes]], body: dict[str, Any], scope: Mapping[str, str]
) -> dict[str, Any]:
    """Session/user/agent/run/request attributes of one request: ``scope`` (the context) > headers > body.

    ``headers``: (raw, lower-cased name, value) triples, as ``_lowered_headers`` gives them.
    """
    attrs: dict[str, Any] = {}
    user = body_user(body)
    if user is not None:
        attrs[c.USER_ID] = user
    names = tuple(map(_name_of, headers))
    plan = _PLANS.get(names)
    if plan is None:
        plan = _header_plan(names)
        if len(_PLANS) >= _PLANS_SIZE:
            _PLANS.clear()
        _PLANS[names] = plan
    for index, step, key in plan:
        value = headers[index][2]
        if step == _RESEND:
            if value.isdigit() and value != b"0":
                attrs[key] = int(value)
        else:
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
        # The URL's parts -> the endpoint and its constant span attributes, or None for
        # other traffic: recognising a URL once keeps string work off repeated calls.
        self._endpoints: dict[tuple[Any, ...], tuple[Endpoint, dict[str, Any]] | None] = {}

    def _endpoint(self, url: Any) -> tuple[Endpoint, dict[str, Any]] | None:
        # httpx and httpx2 keep a URL's parts in a (scheme, userinfo, host, port, path, query,
        # fragment) tuple: used as it is, it spares five property calls per request.
        key = getattr(url, "_uri_reference", None)
        if not isinstance(key, tuple):
            key = (url.scheme, url.raw_host, url.port, url.raw_path)
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
            encoding, content_type = _content_headers(headers)
            if self._decoded:
                encoding = ""
            if encoding in ("gzip", "deflate"):
                body = zlib.decompress(body, zlib.MAX_WBITS | 32)
            elif encoding not in ("", "identity"):
                return False  # brotli/zstd: let it pass unparsed
            if content_type.startswith("text/event-stream"):
                _read_events(reader, body)
                return True
        if body[:1] in (b"{", b"["):
            reader.update(_parse(body.decode()))
        return False


def _content_headers(headers: Any) -> tuple[str, str]:
    """A response's content-encoding (lower-cased) and content-type; "" for one it has not."""
    triples = getattr(headers, "_list", None)
    if isinstance(triples, list):
        # httpx and httpx2 keep (raw, lower-cased, value) triples: a dict of them, made in C,
        # spares their get(), which lower-cases, encodes and scans all headers per name.
        found = dict(zip(map(_name_of, triples), map(_value_of, triples)))
        if len(found) == len(triples):  # a repeated header is joined by get(): let it do that
            encoding = found.get(b"content-encoding", b"").decode("latin-1").lower()
            return encoding, found.get(b"content-type", b"").decode("latin-1")
    return headers.get("content-encoding", "").lower(), headers.get("content-type", "")


def _read_events(reader: ResponseReader, body: bytes) -> None:
    """Give ``reader`` the first event, the last (some APIs' usage) and those it needs in between."""
    if reader.capture or len(body) < SCAN_FROM_BYTES:
        # Every delta counts (content captured), or a stream of a few events: split them all.
        events = [payload for payload in event_payloads(body) if payload != b"[DONE]"]
        last = len(events) - 1
        payloads = [
            payload
            for index, payload in enumerate(events)
            if index == 0 or index == last or reader.capture or reader.interesting.search(payload)
        ]
    else:
        payloads = selected_payloads(body, reader.interesting)
    for payload in payloads:
        reader.update(_parse_bytes(payload))
