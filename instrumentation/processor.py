"""The span processor that puts the session context on every span started inside it."""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from sessionlens.instrumentation.context import BAGGAGE_KEYS, current_attributes


class SessionSpanProcessor(SpanProcessor):
    """Copies the ``sessionlens.session()``/``run()`` attributes onto each span at its start.

    With ``adopt_baggage`` it also adopts session attributes that arrived as W3C baggage
    from an upstream service, below the local context in precedence.
    """

    def __init__(self, adopt_baggage: bool = False, skip_scope: str | None = None) -> None:
        self._adopt_baggage = adopt_baggage
        # The LLM spans of our own instrumentation already carry the merged attributes.
        self._skip_scope = skip_scope

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == self._skip_scope:
            return
        if self._adopt_baggage:
            entries = baggage.get_all(parent_context)
            if entries:
                span.set_attributes({k: str(v) for k, v in entries.items() if k in BAGGAGE_KEYS})
        attributes = current_attributes()
        if attributes:
            span.set_attributes(attributes)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
