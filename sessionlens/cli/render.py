"""Terminal rendering of the sessions API's JSON: tables, the waterfall, numbers.

Every value that came from spans (ids, names, models, paths, status messages …) passes
:func:`safe` (:func:`sessionlens.terminal.printable`) before it reaches the terminal: a span
writer must not be able to move the cursor, retitle the window, hide text or reorder it. Cells are
``rich`` ``Text`` objects, never markup, so ``[bold]`` in a value is shown as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sessionlens.terminal import printable

def safe(value: Any) -> str:
    """A value from spans (any type, None as empty) as text safe for the terminal."""
    return printable("" if value is None else str(value))


def text(value: Any, style: str = "") -> Text:
    """A table cell of a value from spans (escaped, never parsed as markup)."""
    return Text(safe(value), style=style)


def console(stream=None) -> Console:
    """A console that prints values as they are: no markup, emoji codes or highlighting."""
    return Console(file=stream, highlight=False, markup=False, emoji=False, soft_wrap=False)


# --- numbers and times -------------------------------------------------------------------


def usd(value: Any) -> str:
    """USD to the micro-dollar, as the API gives it (rounded for display only)."""
    return "-" if value is None else f"${float(value):.6f}"


def count(value: Any) -> str:
    return "-" if value is None else str(int(value))


def ms(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def seconds(value: Any) -> str:
    """A duration in s as 3.2s, 4m05s, 2h03m."""
    if value is None:
        return "-"
    s = float(value)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string of the API (or a datetime) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def when(value: Any) -> str:
    """A time as UTC ``YYYY-MM-DD HH:MM:SS``."""
    moment = parse_time(value)
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def ago(value: Any, now: datetime | None = None) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    delta = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    return "just now" if delta < 1 else f"{seconds(delta)} ago"


def tokens(row: Mapping[str, Any]) -> str:
    return f"{count(row.get('input_tokens'))}→{count(row.get('output_tokens'))}"


def names(values: Any) -> str:
    return ", ".join(safe(v) for v in values or [])


# --- tables ------------------------------------------------------------------------------


def _table(title: str | None, columns: Sequence[tuple[str, str]], whole: Sequence[str] = ()) -> Table:
    """A borderless table; the ``whole`` columns never wrap (the others fold long values)."""
    table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name in whole)
    return table


def session_table(rows: Iterable[Mapping[str, Any]], now: datetime | None = None) -> Table:
    """The session list: the columns users of Helicone/Langfuse expect."""
    table = _table(None, [
        ("session", "left"), ("name", "left"), ("user", "left"), ("started", "left"),
        ("last activity", "left"), ("duration", "right"), ("status", "left"), ("calls", "right"),
        ("tokens in→out", "right"), ("cost", "right"), ("errors", "right"), ("agents", "left"),
        ("models", "left"),
    ], whole=("started", "last activity", "duration", "cost"))
    for r in rows:
        errors = int(r.get("errors") or 0)
        table.add_row(
            text(r.get("session_id")), text(r.get("session_name")), text(r.get("user_id")),
            when(r.get("first_seen")), ago(r.get("last_seen"), now), seconds(r.get("duration_s")),
            text(r.get("status"), "green" if r.get("status") == "active" else ""),
            count(r.get("llm_calls")), tokens(r), usd(r.get("cost_usd")),
            Text(str(errors), style="red" if errors else ""), Text(names(r.get("agents"))),
            Text(names(r.get("models"))),
        )
    return table


def header(session: Mapping[str, Any]) -> Table:
    """Totals of one session as label/value pairs."""
    table = _table(None, [("", "left"), ("", "left"), ("", "left"), ("", "left")])
    table.show_header = False
    pairs = [
        ("session", text(session.get("session_id"))), ("name", text(session.get("session_name"))),
        ("user", text(session.get("user_id"))), ("project", text(session.get("project"))),
        ("environment", text(session.get("environment"))), ("service", text(session.get("service_name"))),
        ("status", text(session.get("status"))), ("source", text(session.get("source"))),
        ("started", Text(when(session.get("first_seen")))), ("duration", Text(seconds(session.get("duration_s")))),
        ("llm calls", Text(count(session.get("llm_calls")))), ("tokens in→out", Text(tokens(session))),
        ("cost", Text(usd(session.get("cost_usd")))), ("errors", Text(count(session.get("errors")))),
        ("success rate", Text(percent(session.get("success_rate")))),
        ("p95 latency", Text(ms(session.get("p95_latency_ms")))),
        ("agents", Text(names(session.get("agents")))), ("models", Text(names(session.get("models")))),
    ]
    for i in range(0, len(pairs), 2):
        (a, va), (b, vb) = pairs[i], pairs[i + 1]
        table.add_row(Text(a, style="dim"), va, Text(b, style="dim"), vb)
    return table


def breakdown_tables(breakdown: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Table]:
    """Cost by agent, model, path and run: each key's own calls, tokens, cost, errors."""
    tables = []
    for name, rows in breakdown.items():
        # spans without an LLM call under a key (agent and transport spans) cost nothing
        rows = [r for r in rows if r.get("llm_calls") or r.get("cost_usd")]
        if not rows:
            continue
        table = _table(f"cost {name.replace('_', ' ')}", [
            ("key", "left"), ("calls", "right"), ("tokens in→out", "right"), ("cost", "right"),
            ("errors", "right"), ("avg latency", "right"),
        ])
        for r in rows:
            table.add_row(text(r.get("key") or "(none)"), count(r.get("llm_calls")), tokens(r),
                          usd(r.get("cost_usd")), count(r.get("errors")), ms(r.get("avg_latency_ms")))
        tables.append(table)
    return tables


def is_error(span: Mapping[str, Any]) -> bool:
    return str(span.get("status", "")) in ("Error", "STATUS_CODE_ERROR")


def is_transport(span: Mapping[str, Any], llm_span_ids: set[str]) -> bool:
    """A transport span (the httpx instrumentation's ``POST`` under an LLM span).

    ``session_detail`` marks them (``is_transport``); for a store without the marker, a span
    with no GenAI operation directly under an LLM call is one.
    """
    if "is_transport" in span:
        return bool(span["is_transport"])
    return not span.get("operation") and span.get("parent_span_id") in llm_span_ids


def _bar(start: float, duration: float, total: float, width: int) -> str:
    if total <= 0:
        return "█"
    left = min(width - 1, int(start / total * width))
    length = max(1, round(duration / total * width))
    return (" " * left + "█" * min(length, width - left)).ljust(width)


def timeline(spans: Sequence[Mapping[str, Any]], *, fold: bool = True, bar_width: int = 30) -> Table:
    """The spans in time order: offset, nesting, path, agent, run, model, tokens, cost,
    latency, status and a waterfall bar; transport spans folded into their LLM span."""
    llm_ids = {s.get("span_id") for s in spans if s.get("operation") or s.get("model")}
    transport = {id(s) for s in spans if is_transport(s, llm_ids)}
    folded: dict[str, int] = {}
    if fold:
        for s in spans:
            if id(s) in transport:
                folded[s.get("parent_span_id")] = folded.get(s.get("parent_span_id"), 0) + 1
    shown = [s for s in spans if not (fold and id(s) in transport)]
    starts = [parse_time(s.get("timestamp")) for s in spans]
    t0 = min((t for t in starts if t), default=None)

    def offset(s) -> float:
        t = parse_time(s.get("timestamp"))
        return (t - t0).total_seconds() if t and t0 else 0.0

    total = max((offset(s) + float(s.get("duration_ms") or 0) / 1000 for s in spans), default=0.0)
    by_id = {s.get("span_id"): s for s in spans}

    def depth(s) -> int:
        level, seen, parent = 0, set(), s.get("parent_span_id")
        while parent in by_id and parent not in seen and level < 16:
            seen.add(parent)
            level += 1
            parent = by_id[parent].get("parent_span_id")
        return level

    table = _table(None, [
        ("offset", "right"), ("span", "left"), ("path", "left"), ("agent", "left"), ("run", "left"),
        ("model", "left"), ("tokens", "right"), ("cost", "right"), ("latency", "right"),
        ("status", "left"), ("waterfall", "left"),
    ], whole=("offset", "span", "waterfall"))
    for s in shown:
        error = is_error(s)
        name = text("  " * depth(s) + safe(s.get("span_name")))
        extra = folded.get(s.get("span_id"))
        if extra:
            name.append(f" +{extra} http", style="dim")
        status = "error" if error else "ok"
        if error and s.get("status_message"):
            status += ": " + safe(s.get("status_message"))
        table.add_row(
            f"{offset(s):.3f}s", name, text(s.get("path")), text(s.get("agent_id")),
            text(s.get("run_id")), text(s.get("model")), tokens(s), usd(s.get("cost_usd")),
            ms(s.get("duration_ms")), Text(status, style="red" if error else "green"),
            Text(_bar(offset(s), float(s.get("duration_ms") or 0) / 1000, total, bar_width),
                 style="red" if error else "cyan"),
        )
    return table


VITALS = [
    ("sessions", "sessions", count), ("active_sessions", "active", count), ("users", "users", count),
    ("llm_calls", "llm calls", count), ("avg_calls_per_session", "calls / session", lambda v: f"{float(v):.2f}"),
    ("total_cost_usd", "cost", usd), ("avg_cost_per_session", "cost / session", usd),
    ("p50_session_duration_s", "p50 session duration", seconds),
    ("p95_session_duration_s", "p95 session duration", seconds),
    ("p50_call_latency_ms", "p50 call latency", ms), ("p95_call_latency_ms", "p95 call latency", ms),
    ("error_rate", "error rate", percent), ("total_tokens", "tokens", count),
]


def vitals_table(vitals: Mapping[str, Any]) -> Table:
    table = _table(None, [("figure", "left"), ("value", "right")])
    for key, label, fmt in VITALS:
        if key in vitals:
            table.add_row(label, fmt(vitals[key]))
    return table


def series_table(series: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("over time", [
        ("bucket", "left"), ("sessions", "right"), ("calls", "right"), ("cost", "right"),
        ("errors", "right"), ("p95 call latency", "right"),
    ])
    for b in series:
        table.add_row(when(b.get("bucket")), count(b.get("sessions")), count(b.get("llm_calls")),
                      usd(b.get("cost_usd")), count(b.get("errors")), ms(b.get("p95_call_latency_ms")))
    return table


def users_table(rows: Iterable[Mapping[str, Any]], now: datetime | None = None) -> Table:
    table = _table(None, [
        ("user", "left"), ("sessions", "right"), ("calls", "right"), ("cost", "right"),
        ("errors", "right"), ("last seen", "left"),
    ])
    for r in rows:
        table.add_row(text(r.get("user_id")), count(r.get("sessions")), count(r.get("llm_calls")),
                      usd(r.get("cost_usd")), count(r.get("errors")), ago(r.get("last_seen"), now))
    return table


def event_line(row: Mapping[str, Any]) -> Text:
    """One live update of ``tail``: when, session, user, calls, tokens, cost, errors, status."""
    line = Text()
    line.append(when(row.get("last_seen")) + "  ", style="dim")
    line.append(safe(row.get("session_id")), style="bold")
    for label, value in (("user", safe(row.get("user_id")) or "-"), ("calls", count(row.get("llm_calls"))),
                         ("tokens", tokens(row)), ("cost", usd(row.get("cost_usd"))),
                         ("errors", count(row.get("errors"))), ("status", safe(row.get("status")))):
        line.append(f"  {label} {value}")
    return line
