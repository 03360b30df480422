"""A known set of LLM spans, sent over OTLP/gRPC into a real collector, for the sessions
API and web UI tests (exact answers are worked out from this data by hand)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions as conv
from sessionlens.collector.otlp_grpc import export_stub

MIN = 60 * 1_000_000_000
MS = 1_000_000


@dataclass
class Call:
    """One span: an LLM call (tokens, an explicit cost) or an agent span (no tokens)."""

    session: str
    offset_min: float  # start, minutes before the test's "now"
    duration_ms: int
    span: int  # span id (unique per test)
    trace: int
    parent: int = 0
    model: str = "gpt-4o"
    input_tokens: int = 100
    output_tokens: int = 10
    cost: float | None = 0.001
    error: bool = False
    operation: str = "chat"
    attributes: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # the span name (default: from the operation and model)


def request(calls: list[Call], now_ns: int, resource: dict[str, str]) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in resource.items():
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = rs.scope_spans.add()
    for c in calls:
        span = scope.spans.add()
        span.trace_id = c.trace.to_bytes(16, "big")
        span.span_id = c.span.to_bytes(8, "big")
        if c.parent:
            span.parent_span_id = c.parent.to_bytes(8, "big")
        span.name = c.name or (f"{c.operation} {c.model}" if c.operation == "chat" else c.operation)
        # CLIENT for LLM calls and HTTP client spans (the httpx instrumentation's POST)
        span.kind = 3 if c.operation == "chat" or conv.HTTP_REQUEST_METHOD in c.attributes else 1
        span.start_time_unix_nano = now_ns - int(c.offset_min * MIN)
        span.end_time_unix_nano = span.start_time_unix_nano + c.duration_ms * MS
        if c.error:
            span.status.code = 2
            span.status.message = "upstream 500"
        attributes = {conv.SESSION_ID: c.session, conv.OPERATION: c.operation, **c.attributes}
        if c.operation == "chat":
            attributes.update({
                conv.REQUEST_MODEL: c.model, conv.RESPONSE_MODEL: c.model,
                conv.INPUT_TOKENS: str(c.input_tokens), conv.OUTPUT_TOKENS: str(c.output_tokens),
            })
            if c.cost is not None:
                attributes[conv.COST] = repr(c.cost)
        for key, value in attributes.items():
            kv = span.attributes.add()
            kv.key = key
            if key in (conv.INPUT_TOKENS, conv.OUTPUT_TOKENS):
                kv.value.int_value = int(value)
            elif key == conv.COST:
                kv.value.double_value = float(value)
            else:
                kv.value.string_value = value
    return req.SerializeToString()


def send(port: int, calls: list[Call], now_ns: int, resource: dict[str, str],
         token: str | None = None) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        response = export_stub(channel)(request(calls, now_ns, resource), metadata=metadata,
                                        timeout=30)
        assert not response.HasField("partial_success"), response


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
