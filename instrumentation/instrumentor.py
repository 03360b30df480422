"""``SessionLensInstrumentor``: LLM calls made through httpx or httpx2 become GenAI spans.

It wraps ``Client.send``/``AsyncClient.send`` of both libraries — above the transport, so
the GenAI span is the parent of the HTTP span that opentelemetry-instrumentation-httpx
makes, and so it sees the body the app reads after the HTTP span has ended.
"""

from __future__ import annotations

import importlib
import logging
import weakref
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from wrapt import FunctionWrapper, wrap_function_wrapper

from sessionlens.instrumentation.call import CallTracer
from sessionlens.instrumentation.content import capture_enabled, max_bytes
from sessionlens.instrumentation.context import propagation_enabled
from sessionlens.instrumentation.processor import SessionSpanProcessor
from sessionlens.instrumentation.streams import StreamWrapper, stream_wrappers

_log = logging.getLogger(__name__)

SCOPE = "sessionlens.instrumentation"
"""The instrumentation scope of the LLM spans."""
HTTP_MODULES = ("httpx2", "httpx")

# Providers that already have our processor: the SDK cannot remove one, so add it once.
_with_processor: weakref.WeakSet[Any] = weakref.WeakSet()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sessionlens")
    except PackageNotFoundError:
        return "0"


def _parentable(client: Any, stock: type, method: str) -> bool:
    """Whether the client's transport may start spans or send trace context of its own.

    True unless the client sends through the library's stock transport, unwrapped (class
    or instance: opentelemetry-instrumentation-httpx wraps either) and without mounts.
    The LLM span must then be current while the request is sent, so their spans become
    its children.
    """
    transport = getattr(client, "_transport", None)
    if type(transport) is not stock or getattr(client, "_mounts", None):
        return True
    return hasattr(getattr(transport, method, None), "__wrapped__")


def _sync_send(calls: CallTracer, wrap_stream: StreamWrapper, module: Any) -> Any:
    stock = module.HTTPTransport

    def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        parentable = _parentable(instance, stock, "handle_request")
        call = calls.begin(args[0] if args else kwargs.get("request"), parentable)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.sent()
            call.failed(exc)
            raise
        call.sent()
        call.responded(response, wrap_stream)
        return response

    return send


def _async_send(calls: CallTracer, wrap_stream: StreamWrapper, module: Any) -> Any:
    stock = module.AsyncHTTPTransport

    async def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        parentable = _parentable(instance, stock, "handle_async_request")
        call = calls.begin(args[0] if args else kwargs.get("request"), parentable)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.sent()
            call.failed(exc)
            raise
        call.sent()
        call.responded(response, wrap_stream)
        return response

    return send


class SessionLensInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turns every LLM call made through httpx/httpx2 (openai, anthropic, …) into a GenAI span.

    ``instrument(tracer_provider=None, capture_content=None, adopt_baggage=None)``:
    ``capture_content`` defaults to ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
    ``adopt_baggage`` to ``SESSIONLENS_PROPAGATE_BAGGAGE``. It also adds the span processor
    that copies ``sessionlens.session()``/``run()`` attributes onto every span, when the
    tracer provider is an SDK one.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        # Either httpx or httpx2 will do; _instrument wraps whichever is installed.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        calls = _call_tracer(provider, kwargs.get("capture_content"))
        modules = _http_modules()
        for module in modules:
            sync_stream, async_stream = stream_wrappers(module)
            wrap_function_wrapper(module, "Client.send", _sync_send(calls, sync_stream, module))
            wrap_function_wrapper(module, "AsyncClient.send", _async_send(calls, async_stream, module))
        self._modules = modules
        adopt = kwargs.get("adopt_baggage")
        add_session_processor(provider, propagation_enabled() if adopt is None else adopt)

    def _uninstrument(self, **kwargs: Any) -> None:
        for module in getattr(self, "_modules", ()):
            unwrap(module.Client, "send")
            unwrap(module.AsyncClient, "send")
        self._modules = []

    @staticmethod
    def instrument_client(client: Any, tracer_provider: Any = None, capture_content: bool | None = None) -> None:
        """Instrument one client only: an httpx/httpx2 (Async)Client, or an SDK client built on one."""
        http_client = getattr(client, "_client", client)
        module = next((m for m in _http_modules() if isinstance(http_client, (m.Client, m.AsyncClient))), None)
        if module is None:
            raise TypeError(
                f"sessionlens: cannot instrument {type(client).__name__}: pass an httpx/httpx2 client "
                "or an SDK client (openai, anthropic) that sends through one"
            )
        if isinstance(getattr(http_client, "send", None), FunctionWrapper):
            return
        provider = tracer_provider or trace.get_tracer_provider()
        calls = _call_tracer(provider, capture_content)
        sync_stream, async_stream = stream_wrappers(module)
        if isinstance(http_client, module.AsyncClient):
            wrapper = _async_send(calls, async_stream, module)
        else:
            wrapper = _sync_send(calls, sync_stream, module)
        http_client.send = FunctionWrapper(http_client.send, wrapper)
        add_session_processor(provider, propagation_enabled())

    @staticmethod
    def uninstrument_client(client: Any) -> None:
        """Undo ``instrument_client``."""
        http_client = getattr(client, "_client", client)
        if isinstance(http_client.__dict__.get("send"), FunctionWrapper):
            del http_client.send


def _call_tracer(provider: Any, capture: bool | None) -> CallTracer:
    tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=provider)
    return CallTracer(tracer, capture_enabled() if capture is None else capture, max_bytes())


def _http_modules() -> list[Any]:
    modules = []
    for name in HTTP_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    if not modules:
        raise ModuleNotFoundError("sessionlens instrumentation needs httpx or httpx2: pip install httpx2")
    return modules


def add_session_processor(provider: Any, adopt_baggage: bool) -> None:
    """Give ``provider`` the processor that puts session/run attributes on every span (once)."""
    if provider in _with_processor:
        return
    if not hasattr(provider, "add_span_processor"):
        _log.warning(
            "sessionlens: the tracer provider is not an SDK TracerProvider yet, so session attributes "
            "go on LLM spans only; set the tracer provider before calling instrument()"
        )
        return
    provider.add_span_processor(SessionSpanProcessor(adopt_baggage, skip_scope=SCOPE))
    _with_processor.add(provider)
