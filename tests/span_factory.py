"""One pdata span for processor tests: a client LLM span with the given attributes."""

from __future__ import annotations

from sessionlens.collector.pdata import Span


def make_span(attributes: dict[str, str], resource: dict[str, str] | None = None) -> Span:
    return Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        parent_span_id=b"",
        name="chat gpt-4o",
        kind=3,
        start_time_unix_nano=1_000,
        end_time_unix_nano=2_000,
        attributes=attributes,
        resource={} if resource is None else resource,
    )
