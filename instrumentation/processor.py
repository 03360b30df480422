"""The span processor that puts the session context and the request's identity on every span."""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from sessionlens import conventions as c
from sessionlens.instrumentation.context import BAGGAGE_KEYS, current_attributes
from sessionlens.instrumentation.identity import REQUESTS, identity_of
from sessionlens.instrumentation.spanattrs import put

_SERVER = SpanKind.SERVER


class SessionSpanProcessor(SpanProcessor):
    """Copies the ``sessionlens.session()``/``run()`` attributes onto each span at its start.

    Also tracks the requests this process serves (``identity.REQUESTS``) and gives each
    span of a request the identity its SERVER span records, below the span's own
    attributes and the context in precedence. With ``adopt_baggage`` it also adopts
    session attributes that arrived as W3C baggage from an upstream service, below the
    local context in precedence.
    """

    def __init__(self, adopt_baggage: bool = False, skip_scope: str | None = None) -> None:
        self._adopt_baggage = adopt_baggage
        # The LLM spans of our own instrumentation get all this when their call ends.
        self._skip_scope = skip_scope

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.kind is _SERVER:
            REQUESTS.started(span)
        scope = span.instrumentation_scope
        if scope is not None and scope.name == self._skip_scope:
            return
        context_attributes = current_attributes()
        if not (REQUESTS.serving or self._adopt_baggage):  # the common case of a batch job
            put(span, context_attributes)
            return
        attributes: dict[str, object] = {}
        if REQUESTS.serving:
            attributes[c.SERVES_REQUESTS] = True
            root = REQUESTS.root(span.context.trace_id)
            if root is not None and root is not span:
                attributes.update(identity_of(root, span))
        if self._adopt_baggage:
            entries = baggage.get_all(parent_context)
            if entries:
                attributes.update({k: str(v) for k, v in entries.items() if k in BAGGAGE_KEYS})
        attributes.update(context_attributes)
        put(span, attributes)

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is _SERVER:
            REQUESTS.ended(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
