"""The web UI of the ``sessions_api`` extension (README, "Sessions UI and API"): server-rendered pages.

Pages are Jinja2 templates filled from the same read layer as the JSON API
(:mod:`sessionlens.schema.queries`), so a page and ``/v1/…`` show the same numbers, and
they read without JavaScript. ``static/app.js`` adds what needs a script: live rows over
``/v1/events``, copy buttons, relative times. The URL of every page carries its filters,
sort and cursor, so any view can be shared.

In a browser the token travels in a cookie set by the sign-in form (``/login``): pages
and the event stream then see the same project as the API with that token.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sessionlens.collector import api_params
from sessionlens.collector.auth import Unauthenticated
from sessionlens.schema import queries
from sessionlens.schema.queries import QueryError

if TYPE_CHECKING:
    from sessionlens.collector.sessions_api import SessionsApi
    from sessionlens.collector.sessions_app import Handlers

HERE = Path(__file__).parent / "web"
UI_SPANS_PER_PAGE = 200
"""Spans on one session page (each carries its attributes table: the page stays small)."""
IDLE_GAP_S = 60.0
"""Idle stretches longer than this are drawn as a gap in the waterfall, not to scale."""

SESSION_COLUMNS = [  # (label, sort column or None)
    ("Session", None), ("User", None), ("Started", "first_seen"), ("Last activity", "last_seen"),
    ("Duration", "duration_s"), ("Status", None), ("Calls", "llm_calls"), ("Tokens", None),
    ("Cost", "cost_usd"), ("Errors", "errors"), ("Agents", None), ("Models", None),
]


# --- formatting (Jinja filters) -------------------------------------------------------------


def fmt_time(value: datetime | None) -> str:
    if not isinstance(value, datetime):
        return ""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else ""


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def fmt_cost(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.5f}"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def fmt_ms(value: float | None) -> str:
    return fmt_duration(None if value is None else value / 1000)


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.filters.update(time=fmt_time, iso=iso, duration=fmt_duration, cost=fmt_cost,
                         int=fmt_int, ms=fmt_ms)
    t.env.globals["urlencode"] = urlencode
    return t


# --- the session page's pictures ------------------------------------------------------------


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def waterfall(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of the waterfall: spans in tree order (children under their parent, by start),
    each with its depth and its bar's offset/width in percent of a time axis on which idle
    stretches longer than :data:`IDLE_GAP_S` are cut to a short gap (listed in ``gaps``)."""
    if not spans:
        return {"rows": [], "gaps": [], "total_ms": 0}
    starts = [_ns(s["timestamp"]) for s in spans]
    ends = [start + int((s.get("duration_ms") or 0) * 1e6) for start, s in zip(starts, spans)]
    # busy intervals → the idle stretches to cut
    order = sorted(range(len(spans)), key=lambda i: starts[i])
    cuts: list[tuple[int, int]] = []
    reach = ends[order[0]]
    for i in order[1:]:
        if starts[i] - reach > IDLE_GAP_S * 1e9:
            cuts.append((reach, starts[i]))
        reach = max(reach, ends[i])
    origin, finish = starts[order[0]], max(ends)
    kept = (finish - origin) - sum(b - a for a, b in cuts)
    gap_width = max(kept * 0.04, 1)  # each cut is drawn as 4% of the kept time

    def x(t: int) -> float:
        shown = t - origin
        for a, b in cuts:
            if t >= b:
                shown -= (b - a) - gap_width
            elif t > a:
                shown -= (t - a) - gap_width * (t - a) / (b - a)
        return shown

    total = max(x(finish), 1)
    by_id = {s["span_id"]: i for i, s in enumerate(spans)}
    children: dict[int | None, list[int]] = {}
    for i, s in enumerate(spans):
        parent = by_id.get(s.get("parent_span_id") or "")
        children.setdefault(parent if parent != i else None, []).append(i)
    rows: list[dict[str, Any]] = []
    stack = [(i, 0) for i in sorted(children.get(None, []), key=lambda i: starts[i], reverse=True)]
    seen: set[int] = set()
    while stack:
        i, depth = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        left = x(starts[i]) / total * 100
        width = max((x(ends[i]) - x(starts[i])) / total * 100, 0.3)
        rows.append({"span": spans[i], "depth": min(depth, 12), "left": round(left, 3),
                     "width": round(min(width, 100 - left), 3),
                     "offset_ms": (starts[i] - origin) / 1e6})
        for child in sorted(children.get(i, []), key=lambda c: starts[c], reverse=True):
            stack.append((child, depth + 1))
    gaps = [{"left": round(x(a) / total * 100, 3), "width": round(gap_width / total * 100, 3),
             "seconds": (b - a) / 1e9} for a, b in cuts]
    return {"rows": rows, "gaps": gaps, "total_ms": (finish - origin) / 1e6}


def path_tree(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The by-path breakdown as a tree (``plan/draft`` under ``plan``), each node with the
    calls, cost and errors of its own path and everything below it, depth-first."""
    root: dict[str, Any] = {"children": {}}
    for entry in entries:
        node = root
        parts = [p for p in (entry["key"] or "(no path)").split("/") if p] or ["(no path)"]
        for depth, part in enumerate(parts):
            node = node["children"].setdefault(part, {
                "name": part, "depth": depth, "llm_calls": 0, "cost_usd": 0.0, "errors": 0,
                "children": {}})
            node["llm_calls"] += entry["llm_calls"]
            node["cost_usd"] += entry["cost_usd"]
            node["errors"] += entry["errors"]
    out: list[dict[str, Any]] = []

    def walk(node):
        for child in sorted(node["children"].values(), key=lambda n: -n["cost_usd"]):
            out.append({k: v for k, v in child.items() if k != "children"})
            walk(child)

    walk(root)
    return out


def _messages(text: str) -> list[dict[str, str]]:
    """GenAI semantic-convention messages (``[{role, parts: [{type, content}]}]``, or the
    older ``[{role, content}]``) as (role, text) items."""
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return [{"role": "?", "text": text}]
    if isinstance(data, dict):
        data = [data]
    out = []
    for message in data if isinstance(data, list) else []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role", "?"))
        parts = message.get("parts")
        if isinstance(parts, list):
            texts = [str(p.get("content", "")) if isinstance(p, dict) else str(p) for p in parts]
            body = "\n".join(t for t in texts if t)
        else:
            content = message.get("content", "")
            body = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        if body:
            out.append({"role": role, "text": body})
    return out


def conversation(spans: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The captured messages in order, each once: every call re-sends the history, so a
    message already shown is not shown again."""
    shown: set[tuple[str, str]] = set()
    out = []
    for span in spans:
        for message in (_messages(span.get("input_messages") or "")
                        + _messages(span.get("output_messages") or "")):
            key = (message["role"], message["text"])
            if key in shown:
                continue
            shown.add(key)
            out.append({**message, "span_id": span["span_id"]})
    return out


# --- pages ----------------------------------------------------------------------------------


def _query_string(items: list[tuple[str, str]], **changes: str | None) -> str:
    kept = [(k, v) for k, v in items if k not in changes and v != ""]
    kept += [(k, v) for k, v in changes.items() if v]
    return ("?" + urlencode(kept)) if kept else ""


class Pages:
    """The page handlers, reading through the extension like the API does."""

    def __init__(self, api: SessionsApi, handlers: Handlers) -> None:
        self.api = api
        self.handlers = handlers
        self.templates = templates()

    def _render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("signed_in", self.api.authenticator() is not None)
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    async def _page(self, request: Request, name: str, build) -> Response:
        from sessionlens.collector.sessions_api import StorageNotReady

        try:
            project = self.handlers.project(request)
        except Unauthenticated:
            return self._render(request, "login.html", 401, next=str(request.url.path),
                                message="", title="Sign in")
        items = list(request.query_params.multi_items())
        try:
            context = await build(project, items)
        except QueryError as exc:
            return self._render(request, "error.html", 400, title="Bad request", message=str(exc))
        except StorageNotReady as exc:
            return self._render(request, "error.html", 503, title="Starting", message=str(exc))
        if isinstance(context, Response):
            return context
        if context.get("fragment"):  # the live list asks for its rows only
            name = "_session_rows.html"
        return self._render(request, name, project=project, items=items, **context)

    async def sessions(self, request: Request) -> Response:
        async def build(project, items):
            api_params.check_names(items, (*api_params.LIST_PARAMETERS, "fragment"), properties=True)
            sort = api_params.sort(items)
            page = await run_in_threadpool(
                self.api.read, queries.list_sessions, api_params.filters(items, project), sort,
                api_params.limit(items), api_params.cursor(items))
            sorts = {}
            for _, column in SESSION_COLUMNS:
                if column:
                    descending = not (sort.column == column and sort.descending)
                    sorts[column] = _query_string(items, sort=("-" if descending else "") + column,
                                                  cursor=None, fragment=None)
            fragment = dict(items).get("fragment") == "rows"
            return {"title": "Sessions", "rows": page.rows, "sort": sort, "sorts": sorts,
                    "columns": SESSION_COLUMNS, "fragment": fragment,
                    "values": {k: v for k, v in items},
                    "next": _query_string(items, cursor=page.next_cursor, fragment=None)
                    if page.next_cursor else None,
                    "first_page": _query_string(items, cursor=None, fragment=None) or "?",
                    "paged": api_params.cursor(items) is not None}
        return await self._page(request, "sessions.html", build)

    async def session(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]

        async def build(project, items):
            api_params.check_names(items, api_params.DETAIL_PARAMETERS)
            detail = await run_in_threadpool(
                self.api.read, queries.session, project, session_id,
                api_params.spans_limit(items, UI_SPANS_PER_PAGE),
                api_params.cursor(items, "spans_cursor"))
            if detail is None:
                return self._render(request, "error.html", 404, title="Not found",
                                    message=f"No session {session_id!r}.")
            traces = sorted({s["trace_id"] for s in detail.spans})
            return {"title": detail.session.get("session_name") or session_id,
                    "s": detail.session, "spans": detail.spans, "breakdown": detail.breakdown,
                    "waterfall": waterfall(detail.spans), "traces": traces,
                    "tree": path_tree(detail.breakdown.get("by_path", [])),
                    "conversation": conversation(detail.spans),
                    "next_spans": _query_string(items, spans_cursor=detail.next_spans_cursor)
                    if detail.next_spans_cursor else None,
                    "paged": api_params.cursor(items, "spans_cursor") is not None}
        return await self._page(request, "session.html", build)

    async def overview(self, request: Request) -> Response:
        async def build(project, items):
            api_params.check_names(items, api_params.VITALS_PARAMETERS)
            if not any(k == "since" for k, _ in items):
                items = [("since", "24h"), *items]
            filters = api_params.filters(items, project)
            interval = api_params.interval(items) or _auto_interval(filters)
            vitals = await run_in_threadpool(self.api.read, queries.vitals, filters)
            series = await run_in_threadpool(self.api.read, queries.series, filters, interval)
            top = await run_in_threadpool(self.api.read, queries.list_sessions,
                                          queries.Filters(project=project, since=filters.since,
                                                          until=filters.until), "-cost_usd", 10)
            top_users = await run_in_threadpool(
                self.api.read, queries.list_users,
                queries.Filters(project=project, since=filters.since, until=filters.until),
                "-cost_usd", 10)
            charts = [chart(series, key, label, fmt) for key, label, fmt in (
                ("sessions", "Sessions", fmt_int), ("llm_calls", "LLM calls", fmt_int),
                ("cost_usd", "Cost", fmt_cost), ("p95_call_latency_ms", "p95 call latency", fmt_ms),
                ("errors", "Errored calls", fmt_int))]
            return {"title": "Overview", "vitals": vitals, "charts": charts,
                    "top": top.rows, "top_users": top_users.rows, "interval": interval,
                    "values": dict(items)}
        return await self._page(request, "overview.html", build)

    async def users(self, request: Request) -> Response:
        async def build(project, items):
            api_params.check_names(items, api_params.USER_PARAMETERS)
            sort = api_params.sort(items, queries.USER_SORTS)
            page = await run_in_threadpool(
                self.api.read, queries.list_users, api_params.filters(items, project), sort,
                api_params.limit(items), api_params.cursor(items))
            sorts = {c: _query_string(items, sort=("" if sort.column == c and sort.descending
                                                   else "-") + c, cursor=None)
                     for c in queries.USER_SORTS}
            return {"title": "Users", "rows": page.rows, "sort": sort, "sorts": sorts,
                    "values": dict(items),
                    "next": _query_string(items, cursor=page.next_cursor) if page.next_cursor else None}
        return await self._page(request, "users.html", build)

    async def login_form(self, request: Request) -> Response:
        return self._render(request, "login.html", next=request.query_params.get("next", "/"),
                            message="", title="Sign in")

    async def login(self, request: Request) -> Response:
        from sessionlens.collector.sessions_api import TOKEN_COOKIE

        form = await _small_form(request)
        token = form.get("token", "").strip()
        target = form.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never redirect off this site
        try:
            self.api.project(f"Bearer {token}", None)
        except Unauthenticated:
            return self._render(request, "login.html", 401, next=target, title="Sign in",
                                message="That token is not valid.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                            max_age=30 * 86400)
        return response

    async def logout(self, request: Request) -> Response:
        from sessionlens.collector.sessions_api import TOKEN_COOKIE

        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(TOKEN_COOKIE)
        return response


async def _small_form(request: Request, limit: int = 8192) -> dict[str, str]:
    """An urlencoded form of at most ``limit`` bytes (the sign-in form is two fields)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _auto_interval(filters: queries.Filters) -> int:
    """A bucket giving 24–96 points over the range (1h over a day, 1d over a month)."""
    until = filters.until or datetime.now(timezone.utc)
    span = (until - filters.since).total_seconds() if filters.since else 86400
    for step in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400):
        if span / step <= 96:
            return step
    return 30 * 86400


def chart(series: list[dict[str, Any]], key: str, label: str, fmt) -> dict[str, Any]:
    """A bar chart of one series column: bars with x, width and height in percent."""
    counts = key in ("sessions", "llm_calls", "errors")
    show = (lambda v: fmt(int(v))) if counts else fmt
    values = [float(b.get(key) or 0) for b in series]
    top = max(values, default=0)
    n = max(len(values), 1)
    bars = [{"x": round(i * 100 / n, 3), "w": round(100 / n * 0.8, 3),
             "h": round(v / (top or 1) * 100, 3), "title": f"{fmt_time(b['bucket'])}: {show(v)}"}
            for i, (v, b) in enumerate(zip(values, series))]
    # the range's total where buckets add up (calls, cost, errors); sessions and
    # latency do not add up across buckets: their chart says the largest bucket
    summary = show(sum(values)) if key in ("llm_calls", "cost_usd", "errors") else ""
    return {"key": key, "label": label, "bars": bars, "max": show(top), "summary": summary,
            "first": fmt_time(series[0]["bucket"]) if series else "",
            "last": fmt_time(series[-1]["bucket"]) if series else ""}


def routes(api: SessionsApi, handlers: Handlers) -> list:
    pages = Pages(api, handlers)
    return [
        Route("/", pages.sessions),
        Route("/sessions/{session_id:path}", pages.session),
        Route("/overview", pages.overview),
        Route("/users", pages.users),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
