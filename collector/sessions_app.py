"""The Starlette app of the ``sessions_api`` extension: JSON API routes (described in ``openapi.py``), the
event stream, and the web UI's routes (:mod:`sessionlens.collector.web_ui`).

Handlers parse parameters (:mod:`~sessionlens.collector.api_params`), scope the read to
the caller's project and run it on a worker thread; answers are JSON with RFC 3339 UTC
times. Errors are ``{"error": "..."}``: 400 for a bad parameter, 401 without a valid
token, 404 for an unknown session, 503 while storage is not ready or the stream is full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sessionlens.collector import api_params, openapi
from sessionlens.collector.auth import Unauthenticated
from sessionlens.collector.session_events import TooManySubscribers
from sessionlens.schema import queries
from sessionlens.schema.queries import QueryError

if TYPE_CHECKING:
    from sessionlens.collector.sessions_api import SessionsApi

log = logging.getLogger("sessionlens.collector")

_HEARTBEAT_S = 15.0
_CLIENT_RETRY_MS = 3000


def jsonable(value: Any) -> Any:
    """A view value as JSON: RFC 3339 UTC times, lists for tuples, null for non-finite floats."""
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":")).encode()


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _Json({"error": message}, status_code=status, headers=headers)


def unauthorized(message: str) -> Response:
    return error(401, message, {"WWW-Authenticate": 'Bearer realm="sessionlens"'})


class Handlers:
    """The API's route handlers, bound to the running extension."""

    def __init__(self, api: SessionsApi) -> None:
        self.api = api

    def project(self, request: Request) -> str | None:
        from sessionlens.collector.sessions_api import TOKEN_COOKIE

        return self.api.project(request.headers.get("authorization"),
                                request.cookies.get(TOKEN_COOKIE))

    async def guarded(self, request: Request, answer) -> Response:
        """Authenticate, run ``answer(project, items)``, map failures to their status."""
        from sessionlens.collector.sessions_api import StorageNotReady

        try:
            project = self.project(request)
        except Unauthenticated as exc:
            return unauthorized(str(exc))
        try:
            return await answer(project, list(request.query_params.multi_items()))
        except QueryError as exc:
            return error(400, str(exc))
        except StorageNotReady as exc:
            return error(503, str(exc), {"Retry-After": "1"})

    async def sessions(self, request: Request) -> Response:
        async def answer(project, items):
            api_params.check_names(items, api_params.LIST_PARAMETERS, properties=True)
            page = await run_in_threadpool(
                self.api.read, queries.list_sessions, api_params.filters(items, project),
                api_params.sort(items), api_params.limit(items), api_params.cursor(items))
            return _Json({"sessions": page.rows, "next_cursor": page.next_cursor})
        return await self.guarded(request, answer)

    async def session(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]

        async def answer(project, items):
            api_params.check_names(items, api_params.DETAIL_PARAMETERS)
            if len(session_id) > api_params.MAX_VALUE_CHARS:
                raise QueryError(f"session id is longer than {api_params.MAX_VALUE_CHARS} characters")
            detail = await run_in_threadpool(
                self.api.read, queries.session, project, session_id,
                api_params.spans_limit(items), api_params.cursor(items, "spans_cursor"))
            if detail is None:
                return error(404, f"no session {session_id!r}"
                             + (" in your project" if project is not None else ""))
            return _Json({"session": detail.session, "spans": detail.spans,
                          "next_spans_cursor": detail.next_spans_cursor,
                          "breakdown": detail.breakdown})
        return await self.guarded(request, answer)

    async def vitals(self, request: Request) -> Response:
        async def answer(project, items):
            api_params.check_names(items, api_params.VITALS_PARAMETERS)
            filters = api_params.filters(items, project)
            interval = api_params.interval(items)
            body = dict(await run_in_threadpool(self.api.read, queries.vitals, filters))
            if interval is not None:
                body["series"] = await run_in_threadpool(
                    self.api.read, queries.series, filters, interval)
            return _Json(body)
        return await self.guarded(request, answer)

    async def users(self, request: Request) -> Response:
        async def answer(project, items):
            api_params.check_names(items, api_params.USER_PARAMETERS)
            page = await run_in_threadpool(
                self.api.read, queries.list_users, api_params.filters(items, project),
                api_params.sort(items, queries.USER_SORTS), api_params.limit(items),
                api_params.cursor(items))
            return _Json({"users": page.rows, "next_cursor": page.next_cursor})
        return await self.guarded(request, answer)

    async def events(self, request: Request) -> Response:
        async def answer(project, items):
            api_params.check_names(items, ())
            try:
                subscriber = self.api.events.subscribe(project)
            except TooManySubscribers as exc:
                return error(503, f"{exc}; retry later", {"Retry-After": "5"})
            return StreamingResponse(
                self._stream(subscriber), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await self.guarded(request, answer)

    async def _stream(self, subscriber):
        try:
            yield f"retry: {_CLIENT_RETRY_MS}\n: sessionlens session events\n\n".encode()
            while True:
                try:
                    row = await asyncio.wait_for(subscriber.queue.get(), _HEARTBEAT_S)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if row is None:  # the server stops, or this client fell too far behind
                    return
                yield b"event: session\ndata: " + dumps(row) + b"\n\n"
        finally:
            self.api.events.unsubscribe(subscriber)

    async def healthz(self, request: Request) -> Response:
        return _Json({"status": "ok"})

    async def openapi(self, request: Request) -> Response:
        try:
            self.project(request)
        except Unauthenticated as exc:
            return unauthorized(str(exc))
        return _Json(openapi.document())


def build(api: SessionsApi) -> Starlette:
    """The app: ``/v1/*`` JSON, ``/healthz``, and the web UI unless ``ui: false``."""
    handlers = Handlers(api)
    routes = [
        Route("/healthz", handlers.healthz),
        Route("/v1/openapi.json", handlers.openapi),
        Route("/v1/sessions", handlers.sessions),
        Route("/v1/sessions/{session_id:path}", handlers.session),
        Route("/v1/vitals", handlers.vitals),
        Route("/v1/users", handlers.users),
        Route("/v1/events", handlers.events),
    ]
    if api.config.ui:
        from sessionlens.collector import web_ui

        routes.extend(web_ui.routes(api, handlers))
    app = Starlette(routes=routes, exception_handlers={
        404: lambda request, exc: error(404, f"not found: {request.url.path}"),
        405: lambda request, exc: error(405, "method not allowed: the API is read-only (GET)"),
        500: _internal,
    })
    return app


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("sessions API: %s %s failed", request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    return error(500, "internal error; see the collector log")
