"""The span data that flows through the collector's pipeline.

A :class:`Batch` goes from component to component. It holds spans in one of two forms:

- the engine path (the hot one): requests kept as the protobuf bytes the client sent,
  their spans' few columns the processors need extracted by the ClickHouse engine
  (``columns``, see ``collector/engine.py``); the exporter spools the bytes with the
  processors' decisions and the engine renders the rows;
- the span path: :class:`Span` objects decoded in Python, changed in place by processors,
  written by the exporter as rows of ``otel_traces``. Requests the engine path does not
  reproduce exactly (see ``schema/ingest.py``) take it, as does everything when no engine
  is at hand.

Span attribute values are already strings,
rendered the way the OpenTelemetry Collector's clickhouseexporter renders them (ints and
floats in decimal, booleans as ``true``/``false``, arrays and maps as JSON), because
``SpanAttributes`` and ``ResourceAttributes`` are ``Map(LowCardinality(String), String)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionlens.collector.engine import SpanColumns
    from sessionlens.collector.otlp import Decoded


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


@dataclass(slots=True, eq=False)
class Request:
    """One OTLP Export request as received, and what became of it.

    ``body`` is the ExportTraceServiceRequest's protobuf encoding; ``project`` the one its
    token authenticated (None: the resource's own). The pipeline fills in the outcome:
    ``decoded`` when its spans took the span path (their rejections are counted there),
    ``malformed`` when the body is no request at all.
    """

    body: bytes
    project: str | None = None
    decoded: Decoded | None = None
    malformed: str = ""


@dataclass(slots=True, eq=False)
class Batch:
    """The spans one pipeline call carries, in either form (see the module docstring)."""

    spans: list[Span] = field(default_factory=list)
    """Spans on the span path."""
    requests: list[Request] = field(default_factory=list)
    """Requests received as bytes and not decoded yet (only upstream of the decode stage)."""
    columns: SpanColumns | None = None
    """Spans on the engine path (downstream of the decode stage)."""

    def __len__(self) -> int:
        """Spans in the batch (a request not decoded yet counts by a size estimate)."""
        count = len(self.spans) + (len(self.columns) if self.columns is not None else 0)
        return count + sum(len(r.body) // BYTES_PER_SPAN_ESTIMATE + 1 for r in self.requests)

    @classmethod
    def merged(cls, batches: list[Batch]) -> Batch:
        """One batch of several (upstream of the decode stage: no columns yet)."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            [span for b in batches for span in b.spans],
            [request for b in batches for request in b.requests],
        )


BYTES_PER_SPAN_ESTIMATE = 512
"""An LLM span's typical OTLP size, for counting spans of requests not decoded yet."""
