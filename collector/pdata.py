"""The span data that flows through the collector's pipeline.

The receiver decodes OTLP into these objects, processors change them in place, and the
exporter writes them as rows of ``otel_traces``. Attribute values are already strings,
rendered the way the OpenTelemetry Collector's clickhouseexporter renders them (ints and
floats in decimal, booleans as ``true``/``false``, arrays and maps as JSON), because
``SpanAttributes`` and ``ResourceAttributes`` are ``Map(LowCardinality(String), String)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Event:
    time_unix_nano: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Link:
    trace_id: bytes
    span_id: bytes
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span, with its resource and scope flattened onto it (one row of otel_traces).

    ``resource`` is shared by all spans of one OTLP ResourceSpans: a processor that needs
    to change resource attributes for one span replaces the dict rather than mutating it.
    """

    trace_id: bytes  # 16 bytes, not all zero
    span_id: bytes  # 8 bytes, not all zero
    parent_span_id: bytes  # empty for a root span, else 8 bytes
    name: str
    kind: int  # OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, str]
    resource: dict[str, str]
    scope_name: str = ""
    scope_version: str = ""
    trace_state: str = ""
    status_code: int = 0  # OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_message: str = ""
    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    rejected: str = ""
    """Why the pipeline gave up on this span (empty: it goes on). The receiver reports such
    spans to the client through ``partial_success``; no later component sees them."""

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano

    def get(self, key: str) -> str | None:
        """An attribute of the span, falling back to its resource (span wins)."""
        value = self.attributes.get(key)
        return value if value is not None else self.resource.get(key)
