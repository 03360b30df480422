"""Who a request is from: the identity a web framework recorded on its SERVER span.

The collector keys sessions by it (docs/sessions.md, "Never merge strangers").

A web framework's instrumentation (FastAPI/Starlette/ASGI, Flask/WSGI, Django …) starts one
SERVER span per request and records the visitor on it: ``client.address`` and
``user_agent.original`` (``net.peer.ip``, ``http.client_ip``, ``http.user_agent`` before
the stable HTTP conventions), and ``user.id``/``enduser.id`` when the app records the
logged-in user. The spans of the request — the LLM call's above all — carry none of it,
and they usually reach the collector first: a request outlives the SDK's export batch,
and its SERVER span ends last. So each span of a request gets a copy of its request's
identity when it starts (the LLM span when its call ends, reading it then), and the
collector keys the session by the visitor whichever span of the trace arrives first.

``REQUESTS`` remembers the local root SERVER span (no parent, or a remote one) of every
request in progress, by trace id: set on its start, dropped on its end, bounded. Once it
has seen one the process serves requests, and every span it starts from then on says so
(``sessionlens.process.serves_requests``): the collector never keys such a span by the
service instance, so the requests of different people are never one session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sessionlens import conventions as c

MAX_REQUESTS = 65_536
"""Requests in progress remembered at most (a SERVER span that never ends must not leak)."""


class Requests:
    """The local root SERVER spans of the requests in progress, by trace id."""

    __slots__ = ("serving", "_roots")

    def __init__(self) -> None:
        self.serving = False
        """True once this process has started a local root SERVER span."""
        # trace id -> span; plain dict operations, atomic under the GIL: no lock needed
        self._roots: dict[int, Any] = {}

    def started(self, span: Any) -> None:
        """``span`` (an SDK span of kind SERVER) started; remember it if it is a local root."""
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return  # a SERVER span below another span of this process: not the request's root
        self.serving = True
        roots = self._roots
        if len(roots) >= MAX_REQUESTS:
            try:
                del roots[next(iter(roots))]  # the oldest request still open
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                pass
        # setdefault: a request re-entering this process in the same trace keeps the outer root
        roots.setdefault(span.context.trace_id, span)

    def ended(self, span: Any) -> None:
        """A SERVER span ended: forget its request if it was the root."""
        context = span.context
        root = self._roots.get(context.trace_id)
        if root is not None and root.context.span_id == context.span_id:
            self._roots.pop(context.trace_id, None)

    def root(self, trace_id: int) -> Any:
        """The local root SERVER span of the request of ``trace_id`` in progress, or None."""
        return self._roots.get(trace_id)


REQUESTS = Requests()


def _recorded(span: Any) -> Mapping[str, Any]:
    """A span's attributes as a plain mapping: the SDK span's dict itself when there is one
    (its public ``attributes`` proxies a BoundedAttributes, whose ``get`` and ``in`` raise
    and catch KeyError for every absent name: microseconds per span), else the public view."""
    recorded = getattr(getattr(span, "_attributes", None), "_dict", None)
    return recorded if isinstance(recorded, dict) else span.attributes


def identity_of(root: Any, present: Any = None) -> dict[str, Any]:
    """The canonical identity attributes the request's ``root`` span records now, leaving out
    the keys that the span ``present`` (an SDK span or a mapping) already has: what a span
    says of itself wins. ``{}`` without a root."""
    if root is None:
        return {}
    recorded = _recorded(root)
    has = {} if present is None else present if isinstance(present, Mapping) else _recorded(present)
    identity: dict[str, Any] = {}
    for key, names in c.IDENTITY_KEYS.items():
        if key in has:
            continue
        for name in names:
            value = recorded.get(name)
            if value:
                identity[key] = value
                break
    return identity
