"""``sessionlens.session(...)`` and ``sessionlens.run(...)``: the session context of the code inside.

Both are context managers (``with`` and ``async with``) and decorators (sync and async
functions). They keep the session attributes (``sessionlens.conventions``) in a context variable, so the context follows
asyncio tasks created inside and stays separate per thread; the span processor copies it
onto every span started inside, whichever instrumentation starts it.

This module is imported by ``import sessionlens``: it must stay cheap, so OpenTelemetry is
only imported when baggage propagation is switched on.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, TypeVar

from sessionlens import conventions as c

PROPAGATE_ENV = "SESSIONLENS_PROPAGATE_BAGGAGE"
"""Set to ``true`` to send the session attributes as W3C baggage (and adopt incoming baggage)."""

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ATTRIBUTES: ContextVar[Mapping[str, str]] = ContextVar("sessionlens_attributes", default=_EMPTY)

BAGGAGE_KEYS = (
    c.SESSION_ID,
    c.SESSION_NAME,
    c.SESSION_PATH,
    c.USER_ID,
    c.RUN_ID,
    c.AGENT_ID,
    c.AGENT_NAME,
)
"""The attributes that travel as baggage when propagation is on."""

F = TypeVar("F", bound=Callable[..., Any])


def current_attributes() -> Mapping[str, str]:
    """The session/run attributes of the current context (empty outside any scope)."""
    return _ATTRIBUTES.get()


def propagation_enabled() -> bool:
    """Whether ``SESSIONLENS_PROPAGATE_BAGGAGE`` switches baggage propagation on."""
    return os.environ.get(PROPAGATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class Scope:
    """A session or run scope: a context manager and a decorator, sync and async.

    Each entry computes its attributes from the enclosing scope at that moment, so one
    decorated function called from many tasks or threads gets one scope per call.
    """

    def __init__(self, resolve: Callable[[Mapping[str, str]], dict[str, str]], propagate: bool | None) -> None:
        self._resolve = resolve
        self._propagate = propagate
        self._tokens: list[tuple[Token[Mapping[str, str]], object | None]] = []

    @property
    def attributes(self) -> Mapping[str, str]:
        """The attributes this scope puts on spans, once entered (the innermost entry)."""
        return _ATTRIBUTES.get() if self._tokens else _EMPTY

    def __enter__(self) -> Scope:
        outer = _ATTRIBUTES.get()
        merged = MappingProxyType({**outer, **self._resolve(outer)})
        token = _ATTRIBUTES.set(merged)
        baggage_token = None
        propagate = propagation_enabled() if self._propagate is None else self._propagate
        if propagate:
            baggage_token = _attach_baggage(merged)
        self._tokens.append((token, baggage_token))
        return self

    def __exit__(self, *exc_info: object) -> None:
        token, baggage_token = self._tokens.pop()
        if baggage_token is not None:
            from opentelemetry import context

            context.detach(baggage_token)  # type: ignore[arg-type]
        _ATTRIBUTES.reset(token)

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __call__(self, fn: F) -> F:
        """Use the scope as a decorator: every call runs inside a fresh entry of it."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with Scope(self._resolve, self._propagate):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Scope(self._resolve, self._propagate):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _attach_baggage(attributes: Mapping[str, str]) -> object:
    from opentelemetry import baggage, context

    ctx = context.get_current()
    for key in BAGGAGE_KEYS:
        value = attributes.get(key)
        if value is not None:
            ctx = baggage.set_baggage(key, value, context=ctx)
    return context.attach(ctx)


def _checked(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"sessionlens: {name} must be a non-empty string, got {value!r}")
    return value


def _join_path(outer: str | None, path: str) -> str:
    # A relative path is a step below the enclosing one; a leading "/" starts over.
    if path.startswith("/") or not outer:
        return path
    return outer.rstrip("/") + "/" + path


def session(
    id: str | None = None,  # noqa: A002 - the public keyword: session(id=...)
    name: str | None = None,
    path: str | None = None,
    user_id: str | None = None,
    *,
    propagate: bool | None = None,
) -> Scope:
    """Group every span started inside into one session.

    ``id`` defaults to the enclosing session's id, or a new random id outside any session.
    ``path`` is the step within the session: a relative path is appended to the enclosing
    one (``"triage"`` inside ``"support"`` gives ``"support/triage"``), ``"/x"`` replaces it.
    ``propagate`` sends the attributes to downstream services as W3C baggage — which also
    reaches LLM providers — and defaults to ``SESSIONLENS_PROPAGATE_BAGGAGE``.
    """
    session_id = _checked("id", id)
    values = {
        c.SESSION_NAME: _checked("name", name),
        c.SESSION_PATH: _checked("path", path),
        c.USER_ID: _checked("user_id", user_id),
    }

    def resolve(outer: Mapping[str, str]) -> dict[str, str]:
        attrs = {c.SESSION_ID: session_id or outer.get(c.SESSION_ID) or os.urandom(16).hex()}
        for key, value in values.items():
            if value is not None:
                attrs[key] = _join_path(outer.get(key), value) if key == c.SESSION_PATH else value
        return attrs

    return Scope(resolve, propagate)


def run(
    run_id: str | None = None,
    agent_id: str | None = None,
    agent_name: str | None = None,
    *,
    propagate: bool | None = None,
) -> Scope:
    """Mark every span started inside as part of one agent run (one task of an agent).

    ``run_id`` defaults to a new random id per entry; ``agent_id``/``agent_name`` default
    to the enclosing run's agent.
    """
    given_run = _checked("run_id", run_id)
    values = {c.AGENT_ID: _checked("agent_id", agent_id), c.AGENT_NAME: _checked("agent_name", agent_name)}

    def resolve(outer: Mapping[str, str]) -> dict[str, str]:
        attrs = {c.RUN_ID: given_run or os.urandom(16).hex()}
        attrs.update({key: value for key, value in values.items() if value is not None})
        return attrs

    return Scope(resolve, propagate)
