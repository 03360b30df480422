"""OTLP trace requests → pipeline ``Span``s: parsing, validation, attribute rendering.

Shared by the gRPC and HTTP transports. ``parse_protobuf``/``parse_json`` turn a request
body into an ``ExportTraceServiceRequest`` (raising :class:`MalformedRequest`), and
``decode`` turns that into spans plus the count and description of the spans it rejected
(docs/pipeline.md: invalid spans are rejected one by one, the valid ones of the request are
kept; a span or event timestamp past what storage holds is invalid too).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sessionlens.collector.component import ListenError  # noqa: F401  (the transports raise it as otlp.ListenError)
from sessionlens.collector.pdata import Event, Link, Span
from sessionlens.schema.ingest import MAX_TIME_UNIX_NANO  # a span past it is rejected, not acknowledged

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_PROBLEMS = 3  # problems named in the partial-success message


class MalformedRequest(ValueError):
    """The body is not an ExportTraceServiceRequest (→ INVALID_ARGUMENT / HTTP 400)."""


@dataclass(slots=True)
class Decoded:
    """The valid spans of one request and what was wrong with the others."""

    spans: list[Span]
    rejected: int = 0
    problems: list[str] = dataclass_field(default_factory=list)
    """The first few reasons, ``span 'name': what was wrong``."""

    def reject(self, span_name: str, problem: str) -> None:
        """Count one more rejected span."""
        self.rejected += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"span {span_name!r}: {problem}")

    def collect_rejected(self) -> None:
        """Move the spans the pipeline gave up on (``Span.rejected``) into the count."""
        kept = []
        for span in self.spans:
            if span.rejected:
                self.reject(span.name, span.rejected)
            else:
                kept.append(span)
        self.spans = kept

    @property
    def message(self) -> str:
        if not self.rejected:
            return ""
        more = f" (and {self.rejected - len(self.problems)} more)" if self.rejected > len(self.problems) else ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.problems) + more

    def response(self) -> ExportTraceServiceResponse:
        """The Export response: partial_success only when something was rejected."""
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = self.message
        return response


# --- attribute values, rendered as the clickhouseexporter renders them ---------------


def format_double(value: float) -> str:
    """A double the way Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


# AnyValue's oneof by field number: ListFields() names the set field and its value in one
# call, cheaper than WhichOneof plus an attribute read on this hot path.
_STRING, _BOOL, _INT, _DOUBLE, _ARRAY, _KVLIST, _BYTES = range(1, 8)
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _raw(value) -> object:
    """An AnyValue as a JSON-ready Python value (for arrays and maps)."""
    fields = value.ListFields()
    if not fields:
        return None
    field, item = fields[0]
    number = field.number
    if number == _ARRAY:
        return [_raw(v) for v in item.values]
    if number == _KVLIST:
        return {kv.key: _raw(kv.value) for kv in item.values}
    if number == _BYTES:
        return base64.b64encode(item).decode()
    return item


def render(value) -> str:
    """An AnyValue as the string stored in ``Map(String, String)``.

    Strings as is, ints in decimal, doubles as Go formats them, ``true``/``false``, bytes
    base64, arrays and maps as compact JSON; an empty value is ``""``.
    """
    fields = value.ListFields()
    if not fields:
        return ""
    field, item = fields[0]
    number = field.number
    if number == _STRING:
        return item
    if number == _INT:
        return str(item)
    if number == _BOOL:
        return "true" if item else "false"
    if number == _DOUBLE:
        return format_double(item)
    if number == _BYTES:
        return base64.b64encode(item).decode()
    return _composite(value)


_composite_cache: dict[bytes, str] = {}
_COMPOSITE_CACHE_SIZE = 4096
COMPOSITE_CACHE_MAX_VALUE = 1024
"""Bytes of an encoded value the cache keeps at most: the values that repeat are small, and
the bound keeps the whole cache to a few MiB (each JSON text is at most ~4× its encoding)."""


def _composite(value) -> str:
    """An array or map value as JSON, cached by its encoding when it is small.

    Such values repeat a lot (``finish_reasons: ["stop"]``) and walking them element by
    element is the slowest part of decoding; serializing the small message is cheap.
    """
    key = value.SerializeToString()
    text = _composite_cache.get(key)
    if text is None:
        text = _to_json(_raw(value))
        if len(key) <= COMPOSITE_CACHE_MAX_VALUE:
            if len(_composite_cache) >= _COMPOSITE_CACHE_SIZE:
                _composite_cache.clear()  # bounded; a simple reset keeps the hot path cheap
            _composite_cache[key] = text
    return text


def attributes(key_values) -> dict[str, str]:
    """OTLP KeyValues → ``{key: rendered value}`` (a later duplicate key wins)."""
    result = {}
    for kv in key_values:
        value = kv.value
        # Most values are non-empty strings, then non-zero ints (a oneof: a non-default
        # field is the set one): take those without the general render.
        text = value.string_value
        if not text:
            number = value.int_value
            text = str(number) if number else render(value)
        result[kv.key] = text
    return result


# --- requests ------------------------------------------------------------------------


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """A binary request; invalid UTF-8 in string fields becomes U+FFFD instead of failing."""
    try:
        return ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        pass
    # protobuf rejects a whole message over one bad string: re-read it with every string
    # field typed as bytes, repair the text, and parse the repaired message.
    try:
        lenient = _lenient_request_class().FromString(body)
    except DecodeError as exc:
        raise MalformedRequest(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    _repair_utf8(lenient)
    return ExportTraceServiceRequest.FromString(lenient.SerializeToString())


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: dict) -> None:
    """OTLP/JSON writes ids in hex where proto3 JSON expects base64: convert in place.

    An id that is not hex becomes empty, so the span is rejected as invalid rather than the
    whole request as malformed.
    """
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            obj[name] = base64.b64encode(raw).decode()


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON request (camelCase or snake_case fields, hex ids, enums as ints)."""
    try:
        document = json.loads(body.decode("utf-8", "replace"))
        for resource_spans in document.get("resourceSpans") or document.get("resource_spans") or ():
            scopes = resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or ()
            for scope_spans in scopes:
                for span in scope_spans.get("spans") or ():
                    _hex_ids_to_base64(span)
                    for link in span.get("links") or ():
                        _hex_ids_to_base64(link)
        return json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except RecursionError:  # the JSON parser's own depth bound: nesting only a hostile body has
        raise MalformedRequest("not an OTLP/JSON ExportTraceServiceRequest: nested too deep") from None
    except (ValueError, AttributeError, TypeError, json_format.ParseError) as exc:
        raise MalformedRequest(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None


def _problem(span) -> str | None:
    """Why a span is invalid (docs/pipeline.md, "Receiver"), or None."""
    trace_id = span.trace_id
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE:
        return "trace_id is all zero"
    span_id = span.span_id
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN:
        return "span_id is all zero"
    parent = len(span.parent_span_id)
    if parent and parent != 8:
        return f"parent_span_id must be empty or 8 bytes, got {parent}"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    if span.end_time_unix_nano > MAX_TIME_UNIX_NANO:
        return "end_time_unix_nano is past 2262-04-11, the latest time storage holds"
    return _event_problem(span)


def _event_problem(span) -> str | None:
    for event in span.events:
        if event.time_unix_nano > MAX_TIME_UNIX_NANO:
            return f"event {event.name[:100]!r} is past 2262-04-11, the latest time storage holds"
    return None


def decode(request: ExportTraceServiceRequest, resource_overrides: dict[str, str] | None = None) -> Decoded:
    """The request's valid spans, each carrying its resource and scope.

    ``resource_overrides`` (e.g. the authenticated project) are set on every resource,
    replacing what the client sent.
    """
    decoded = Decoded([])
    append = decoded.spans.append
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        if resource_overrides:
            resource.update(resource_overrides)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                parent = span.parent_span_id
                # One combined check for the common valid case; details only on failure.
                if not (
                    len(trace_id) == 16
                    and len(span_id) == 8
                    and (not parent or len(parent) == 8)
                    and start <= end <= MAX_TIME_UNIX_NANO
                    and trace_id != _ZERO_TRACE
                    and span_id != _ZERO_SPAN
                ) or (span.events and _event_problem(span)):
                    decoded.reject(span.name[:100], _problem(span))
                    continue
                status = span.status
                try:
                    made = Span(
                        trace_id,
                        span_id,
                        parent,
                        span.name,
                        span.kind,
                        start,
                        end,
                        attributes(span.attributes),
                        resource,
                        scope_name,
                        scope_version,
                        span.trace_state,
                        status.code,
                        status.message,
                        [
                            Event(e.time_unix_nano, e.name, attributes(e.attributes))
                            for e in span.events
                        ]
                        if span.events
                        else [],
                        [
                            Link(k.trace_id, k.span_id, k.trace_state, attributes(k.attributes))
                            for k in span.links
                        ]
                        if span.links
                        else [],
                    )
                except Exception as exc:  # whatever one span holds costs that span only
                    decoded.reject(span.name[:100], f"cannot be decoded ({type(exc).__name__})")
                    continue
                append(made)
    return decoded


# --- lenient parsing for invalid UTF-8 ---------------------------------------------------

_LENIENT_PREFIX = "lenient."
_lenient_class = None


def _lenient_request_class():
    """``ExportTraceServiceRequest`` rebuilt in a private pool with strings typed as bytes."""
    global _lenient_class
    if _lenient_class is None:
        pool = descriptor_pool.DescriptorPool()
        _add_lenient_file(pool, ExportTraceServiceRequest.DESCRIPTOR.file, set())
        name = _LENIENT_PREFIX + ExportTraceServiceRequest.DESCRIPTOR.full_name
        _lenient_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return _lenient_class


def _add_lenient_file(pool, file_descriptor, done: set[str]) -> None:
    if file_descriptor.name in done:
        return
    done.add(file_descriptor.name)
    for dependency in file_descriptor.dependencies:
        _add_lenient_file(pool, dependency, done)
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    proto.name = _LENIENT_PREFIX + proto.name
    proto.package = _LENIENT_PREFIX + proto.package
    proto.dependency[:] = [_LENIENT_PREFIX + d for d in proto.dependency]
    proto.ClearField("service")
    proto.ClearField("options")
    for message in proto.message_type:
        _lenient_message(message)
    pool.Add(proto)


def _lenient_message(message: descriptor_pb2.DescriptorProto) -> None:
    for f in message.field:
        if f.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
        if f.type_name.startswith("."):
            f.type_name = "." + _LENIENT_PREFIX + f.type_name[1:]
    for nested in message.nested_type:
        _lenient_message(nested)


def _repair_utf8(message) -> None:
    """Make every (bytes-typed) string field of a lenient message valid UTF-8, recursively."""
    strict = _strict_descriptor(message.DESCRIPTOR)
    for field, value in message.ListFields():
        if field.message_type is not None:
            for item in value if field.is_repeated else (value,):
                _repair_utf8(item)
        elif strict.fields_by_name[field.name].type == field.TYPE_STRING:
            if field.is_repeated:
                fixed = [v.decode("utf-8", "replace").encode() for v in value]
                del value[:]
                value.extend(fixed)
            else:
                setattr(message, field.name, value.decode("utf-8", "replace").encode())


def _strict_descriptor(lenient_descriptor):
    name = lenient_descriptor.full_name[len(_LENIENT_PREFIX) :]
    return descriptor_pool.Default().FindMessageTypeByName(name)
