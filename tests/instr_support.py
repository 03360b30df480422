"""Shared set-up of the instrumentation tests: a tracer provider with an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionlens.instrumentation.finisher import FINISHER
from sessionlens.instrumentation.instrumentor import SCOPE, SessionLensInstrumentor


class Telemetry:
    """An SDK tracer provider whose finished spans the test reads back."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def spans(self) -> tuple[ReadableSpan, ...]:
        FINISHER.flush()  # LLM spans end on the finisher thread
        return self.exporter.get_finished_spans()

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.instrumentation_scope and s.instrumentation_scope.name == SCOPE]


def instrumented(telemetry: Telemetry, **kwargs: object) -> Iterator[Telemetry]:
    """Instrument with ``telemetry``'s provider for the duration of a fixture."""
    instrumentor = SessionLensInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.provider, **kwargs)
    try:
        yield telemetry
    finally:
        instrumentor.uninstrument()
        telemetry.exporter.clear()

