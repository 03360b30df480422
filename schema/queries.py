"""The read layer: every surface (sessions API, web UI, CLI) reads sessions through here.

Each function takes a clickhouse-connect client and reads the public views of
:mod:`sessionlens.schema` (``session_list``, ``session_detail``, ``session_vitals``), so
every surface shows the same numbers. Rows pass through with the views' columns as they
are (a column a later migration adds appears without a change here); times are
timezone-aware UTC datetimes. Every value is bound as a query parameter.

A list page is read in two steps, so it costs the same at any number of sessions: the
page's keys are chosen on the few columns the filters and the sort name (ClickHouse
computes only those columns of the view), then the page's full rows are read by key.

Paging is by keyset: the opaque cursor holds the last row's sort value and key, so rows
that arrive while a client pages never shift a page (no row repeats or is skipped, as
OFFSET would), and it holds the time the first page was read: sessions that began after
it stay out of the later pages (they are at the top when the list is read again, and on
the live stream). A session whose sort value grows while the client pages (more spans,
more cost) moves up the order; with the default descending sorts it is then above the
cursor, shown already, so it is not repeated either.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sessionlens.schema import names
from sessionlens.schema.quoting import ident

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "otel"
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_SPANS_LIMIT = 5000
DEFAULT_SPANS_LIMIT = 500

SORTS: dict[str, tuple[str, str]] = {
    "last_seen": ("toUnixTimestamp64Nano(last_seen)", "Int64"),
    "first_seen": ("toUnixTimestamp64Nano(first_seen)", "Int64"),
    # rounded to a nano-dollar: a float sum may differ in its last bit from one read to
    # the next (merge order), which must not move a row across a cursor
    "cost_usd": ("round(cost_usd, 9)", "Float64"),
    "duration_s": ("duration_s", "Float64"),
    "llm_calls": ("llm_calls", "UInt64"),
    "errors": ("errors", "UInt64"),
}
"""Sortable session columns → (the SQL of the sort value, its parameter type)."""

USER_SORTS: dict[str, tuple[str, str]] = {
    "last_seen": ("toUnixTimestamp64Nano(last_seen)", "Int64"),
    "sessions": ("sessions", "UInt64"),
    "llm_calls": ("llm_calls", "UInt64"),
    "cost_usd": ("round(cost_usd, 9)", "Float64"),
    "errors": ("errors", "UInt64"),
}
"""Sortable user columns (``/v1/users``)."""

STATUSES = ("active", "completed")
_SORT_VALUE = "_sessionlens_sort_value"  # an extra column read for the cursor, then dropped
BREAKDOWN_OF = {"agent": "by_agent", "model": "by_model", "path": "by_path", "run": "by_run"}
"""``session_breakdown``'s dimension -> the breakdown's name in the API."""
BREAKDOWNS = tuple(BREAKDOWN_OF.values())



class QueryError(ValueError):
    """A parameter cannot be used; the message says what is wrong and what is accepted."""


# --- parameters ---------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_RELATIVE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str, name: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time (``2026-01-31T12:00:00Z``) or a duration before now (``24h``, ``7d``)."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _RELATIVE_SECONDS[match.group(2)]
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
        except OverflowError:
            raise QueryError(f"{name}={value!r} reaches before year 1: use a shorter duration") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{name}={value!r} is not a time: use RFC 3339 (2026-01-31T12:00:00Z) "
            "or a duration before now (30m, 24h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        raise QueryError(f"{name}={value!r} has no time zone: add Z or an offset like +02:00")
    return parsed.astimezone(timezone.utc)


def parse_interval(value: str) -> int:
    """Seconds of a series bucket: ``1m`` … ``1h``, ``1d``, ``1w``."""
    match = _RELATIVE.match(value.strip())
    if not match or float(match.group(1)) <= 0:
        raise QueryError(f"interval={value!r} is not a duration: use e.g. 5m, 1h, 1d")
    seconds = float(match.group(1)) * _RELATIVE_SECONDS[match.group(2)]
    if seconds < 60 or seconds > 366 * 86400 or seconds != int(seconds):
        raise QueryError(f"interval={value!r} must be a whole number of seconds from 1m to 366d")
    return int(seconds)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@dataclass(frozen=True)
class Filters:
    """Which sessions a read covers. ``None`` (or empty) means no filter on that column.

    ``project`` scopes every read: the API sets it from the caller's token, never from a
    request parameter. ``since``/``until`` select sessions whose activity overlaps them.
    """

    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    environment: str | None = None
    service: str | None = None
    agent: str | None = None
    model: str | None = None
    status: str | None = None
    source: str | None = None
    name_contains: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    min_cost: float | None = None
    has_errors: bool | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise QueryError(f"status={self.status!r}: use one of {', '.join(STATUSES)}")
        if self.min_cost is not None and not (math.isfinite(self.min_cost) and self.min_cost >= 0):
            raise QueryError(f"min_cost={self.min_cost!r}: use a number of USD, 0 or more")

    def fingerprint(self) -> str:
        """A digest of the filters, so a cursor is refused with other filters than its own."""
        values = [
            getattr(self, f.name).isoformat() if isinstance(getattr(self, f.name), datetime)
            else getattr(self, f.name)
            for f in fields(self)
        ]
        return format(_crc(json.dumps(values, default=str)), "x")


def _crc(text: str) -> int:
    return binascii.crc32(text.encode())


class _Sql:
    """Conditions and their bound parameters, named p0, p1 … as they are added."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.parameters: dict[str, Any] = {}

    def bind(self, value: Any, type_: str) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{type_}}}"

    def where(self, condition: str) -> None:
        self.conditions.append(condition)

    def clause(self) -> str:
        return "WHERE " + " AND ".join(self.conditions) if self.conditions else ""


def _session_conditions(sql: _Sql, f: Filters, client: Client, database: str) -> None:
    """The conditions of ``f`` on the columns of ``session_list``."""
    if f.project is not None:
        sql.where(f"project = {sql.bind(f.project, 'String')}")
    if f.since is not None:
        sql.where(f"toUnixTimestamp64Nano(last_seen) >= {sql.bind(_ns(f.since), 'Int64')}")
    if f.until is not None:
        sql.where(f"toUnixTimestamp64Nano(first_seen) <= {sql.bind(_ns(f.until), 'Int64')}")
    for column, value in (("user_id", f.user), ("environment", f.environment),
                          ("service_name", f.service), ("status", f.status), ("source", f.source)):
        if value is not None:
            sql.where(f"{column} = {sql.bind(value, 'String')}")
    if f.agent is not None:
        sql.where(f"has(agents, {sql.bind(f.agent, 'String')})")
    if f.model is not None:
        sql.where(f"has(models, {sql.bind(f.model, 'String')})")
    if f.name_contains:
        needle = sql.bind(f.name_contains, "String")
        sql.where(f"(positionCaseInsensitiveUTF8(session_name, {needle}) > 0 "
                  f"OR positionCaseInsensitiveUTF8(session_id, {needle}) > 0)")
    if f.properties:
        if "properties" not in view_columns(client, database, names.SESSION_LIST):
            raise QueryError("property.<name> filters need a schema with session properties: "
                             "upgrade the collector (it migrates the store at start)")
        for name, value in f.properties:
            sql.where(f"properties[{sql.bind(name, 'String')}] = {sql.bind(value, 'String')}")
    if f.min_cost is not None:
        sql.where(f"cost_usd >= {sql.bind(f.min_cost, 'Float64')}")
    if f.has_errors is not None:
        sql.where("errors > 0" if f.has_errors else "errors = 0")


# --- cursors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    """A sort column and direction, as the API spells it: ``-last_seen`` = newest first."""

    column: str
    descending: bool

    @classmethod
    def parse(cls, text: str, allowed: Mapping[str, tuple[str, str]] = SORTS) -> Sort:
        column = text.strip().removeprefix("-")
        if column not in allowed:
            options = ", ".join(allowed)
            raise QueryError(f"sort={text!r}: use one of {options}, with - in front for descending")
        return cls(column, text.strip().startswith("-"))

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.column


def _encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str, fingerprint: str) -> dict[str, Any]:
    what = f"cursor is not a {kind} cursor of this listing: pass next_cursor from the previous " \
        "page, with the same filters and sort"
    try:
        text = cursor.strip()
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise QueryError(what) from None
    if not isinstance(payload, dict) or payload.get("k") != kind or payload.get("f") != fingerprint:
        raise QueryError(what)
    return payload


def _keyset(sql: _Sql, sort_sql: str, sort_type: str, key_columns: Sequence[str],
            payload: dict[str, Any], descending: bool) -> None:
    """Rows after the cursor's (sort value, key…) in the listing's order."""
    value, key = payload.get("v"), payload.get("key")
    if not isinstance(key, list) or len(key) != len(key_columns) or not all(
            isinstance(k, str) for k in key):
        raise QueryError("cursor is damaged: pass next_cursor exactly as it was returned")
    if sort_type == "Float64":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok:
        raise QueryError("cursor is damaged: pass next_cursor exactly as it was returned")
    if sort_type == "UInt64" and value < 0:
        raise QueryError("cursor is damaged: pass next_cursor exactly as it was returned")
    mine = ", ".join([sort_sql, *key_columns])
    theirs = ", ".join([sql.bind(value, sort_type), *(sql.bind(k, "String") for k in key)])
    sql.where(f"({mine}) {'<' if descending else '>'} ({theirs})")


# --- rows ---------------------------------------------------------------------------------


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows(result) -> list[dict[str, Any]]:
    names = result.column_names
    return [{n: _utc(v) for n, v in zip(names, row)} for row in result.result_rows]


def _query(client: Client, sql: str, parameters: Mapping[str, Any]):
    return client.query(sql, parameters=dict(parameters))


def _table(database: str, name: str) -> str:
    return f"{ident(database)}.{ident(name)}"


def view_columns(client: Client, database: str, view: str) -> list[str]:
    """The column names of one view, in order."""
    result = client.query(f"DESCRIBE TABLE {_table(database, view)}")
    return [row[0] for row in result.result_rows]


@dataclass
class Page:
    """One page of a listing and the cursor of the next one (None on the last page)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def _check_limit(limit: int, name: str = "limit", most: int = MAX_LIMIT) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise QueryError(f"{name}={limit!r}: use a whole number from 1 to {most}")


def list_sessions(
    client: Client,
    filters: Filters = Filters(),
    sort: Sort | str = "-last_seen",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    *,
    database: str = DEFAULT_DATABASE,
) -> Page:
    """One page of ``session_list`` rows matching ``filters``, in ``sort`` order."""
    sort = Sort.parse(sort) if isinstance(sort, str) else sort
    _check_limit(limit)
    sort_sql, sort_type = SORTS[sort.column]
    fingerprint = f"{filters.fingerprint()}:{sort}"
    view = _table(database, names.SESSION_LIST)
    sql = _Sql()
    _session_conditions(sql, filters, client, database)
    if cursor:
        payload = _decode_cursor(cursor, "sessions", fingerprint)
        as_of = payload.get("t")
        if not isinstance(as_of, int) or isinstance(as_of, bool):
            raise QueryError("cursor is damaged: pass next_cursor exactly as it was returned")
        _keyset(sql, sort_sql, sort_type, ("project", "session_id"), payload, sort.descending)
        sql.where(f"toUnixTimestamp64Nano(first_seen) <= {sql.bind(as_of, 'Int64')}")
    else:
        as_of = time.time_ns()
    direction = "DESC" if sort.descending else "ASC"
    keys = _query(
        client,
        f"SELECT project, session_id, {sort_sql} AS sort_value FROM {view}\n{sql.clause()}\n"
        f"ORDER BY sort_value {direction}, project {direction}, session_id {direction}\n"
        f"LIMIT {sql.bind(limit + 1, 'UInt32')}",
        sql.parameters,
    ).result_rows
    more = len(keys) > limit
    keys = keys[:limit]
    if not keys:
        return Page([], None)
    by_key = {
        (r["project"], r["session_id"]): r
        for r in _rows(_query(
            client,
            f"SELECT * FROM {view} WHERE (project, session_id) IN {{keys:Array(Tuple(String, String))}}",
            {"keys": [(p, s) for p, s, _ in keys]},
        ))
    }
    rows = [by_key[(p, s)] for p, s, _ in keys if (p, s) in by_key]
    next_cursor = None
    if more:
        p, s, value = keys[-1]
        next_cursor = _encode_cursor(
            {"k": "sessions", "f": fingerprint, "v": value, "key": [p, s], "t": as_of}
        )
    return Page(rows, next_cursor)


def session_row(client: Client, project: str | None, session_id: str, *,
                database: str = DEFAULT_DATABASE) -> dict[str, Any] | None:
    """The ``session_list`` row of one session, or None if it has no spans (in ``project``)."""
    sql = _Sql()
    sql.where(f"session_id = {sql.bind(session_id, 'String')}")
    if project is not None:
        sql.where(f"project = {sql.bind(project, 'String')}")
    rows = _rows(_query(
        client, f"SELECT * FROM {_table(database, names.SESSION_LIST)} {sql.clause()} "
        "ORDER BY project LIMIT 1", sql.parameters))
    return rows[0] if rows else None


_VIEW_PARAMETERS: dict[tuple[str, str], tuple[str, ...]] = {}
_PARAMETER = re.compile(r"\{(\w+):")


def view_parameters(client: Client, database: str, view: str) -> tuple[str, ...]:
    """The parameter names of a parameterized view, read once per database and view."""
    key = (database, view)
    if key not in _VIEW_PARAMETERS:
        text = client.command(
            "SELECT create_table_query FROM system.tables WHERE database = {d:String} "
            "AND name = {v:String}", parameters={"d": database, "v": view})
        _VIEW_PARAMETERS[key] = tuple(dict.fromkeys(_PARAMETER.findall(str(text or ""))))
    return _VIEW_PARAMETERS[key]


def _detail(client: Client, database: str, sql: _Sql, session_id: str, project: str | None) -> str:
    """``session_detail(...)`` of one session, with whichever parameters the view takes
    (``session_id``; ``project`` once the view is scoped by project: '' = every project)."""
    given = {"session_id": session_id, "project": project or ""}
    args = ", ".join(f"{name} = {sql.bind(given.get(name, ''), 'String')}"
                     for name in view_parameters(client, database, names.SESSION_DETAIL)
                     or ("session_id",))
    return f"{_table(database, names.SESSION_DETAIL)}({args})"


@dataclass
class SessionDetail:
    """One session: its row, one page of its spans in time order, and its breakdowns."""

    session: dict[str, Any]
    spans: list[dict[str, Any]]
    next_spans_cursor: str | None
    breakdown: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def session_spans(client: Client, project: str | None, session_id: str,
                  limit: int = DEFAULT_SPANS_LIMIT, cursor: str | None = None, *,
                  database: str = DEFAULT_DATABASE) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a session's ``session_detail`` rows (time order) and the next cursor."""
    _check_limit(limit, "spans_limit", MAX_SPANS_LIMIT)
    fingerprint = format(_crc(f"{project}\0{session_id}"), "x")
    sql = _Sql()
    source = _detail(client, database, sql, session_id, project)
    if project is not None:
        sql.where(f"project = {sql.bind(project, 'String')}")
    if cursor:
        payload = _decode_cursor(cursor, "spans", fingerprint)
        _keyset(sql, "toUnixTimestamp64Nano(timestamp)", "Int64", ("span_id",), payload, False)
    # the cursor keeps nanoseconds (a datetime has microseconds): read them alongside
    rows = _rows(_query(
        client,
        f"SELECT *, toUnixTimestamp64Nano(timestamp) AS {_SORT_VALUE}\n"
        f"FROM {source} {sql.clause()}\n"
        f"ORDER BY {_SORT_VALUE}, span_id LIMIT {sql.bind(limit + 1, 'UInt32')}",
        sql.parameters,
    ))
    values = [row.pop(_SORT_VALUE) for row in rows]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode_cursor(
        {"k": "spans", "f": fingerprint, "v": values[limit - 1], "key": [rows[-1]["span_id"]]})


def breakdown(client: Client, project: str | None, session_id: str, *,
              database: str = DEFAULT_DATABASE) -> dict[str, list[dict[str, Any]]]:
    """Per agent, model (the model asked for), path and run of one session, as the
    ``session_breakdown`` view counts them: each key's own calls (a retried attempt is a
    retry, not a call), tokens, cost, errors (calls whose final attempt failed) and mean
    call latency; calls without the key are under ``""``."""
    sql = _Sql()
    text = (
        "SELECT dimension, key, llm_calls, input_tokens, output_tokens, cost_usd, errors,\n"
        "    avg_latency_ms\n"
        f"FROM {_table(database, names.SESSION_BREAKDOWN)}("
        f"session_id = {sql.bind(session_id, 'String')}, project = {sql.bind(project or '', 'String')})\n"
        "ORDER BY dimension, cost_usd DESC, llm_calls DESC, key"
    )
    result: dict[str, list[dict[str, Any]]] = {name: [] for name in BREAKDOWNS}
    for row in _rows(_query(client, text, sql.parameters)):
        result[BREAKDOWN_OF[row.pop("dimension")]].append(row)
    return result


def session(client: Client, project: str | None, session_id: str,
            spans_limit: int = DEFAULT_SPANS_LIMIT, spans_cursor: str | None = None, *,
            database: str = DEFAULT_DATABASE) -> SessionDetail | None:
    """A session's row, a page of its spans and its breakdowns; None for an unknown id."""
    _check_limit(spans_limit, "spans_limit", MAX_SPANS_LIMIT)
    row = session_row(client, project, session_id, database=database)
    if row is None:
        return None
    project = row["project"]
    spans, next_cursor = session_spans(
        client, project, session_id, spans_limit, spans_cursor, database=database)
    return SessionDetail(row, spans, next_cursor,
                         breakdown(client, project, session_id, database=database))


def sessions_by_key(client: Client, keys: Sequence[tuple[str, str]], *,
                    database: str = DEFAULT_DATABASE) -> list[dict[str, Any]]:
    """The ``session_list`` rows of the given (project, session id) keys."""
    if not keys:
        return []
    return _rows(_query(
        client,
        f"SELECT * FROM {_table(database, names.SESSION_LIST)} "
        "WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
        {"keys": list(keys)},
    ))


# --- vitals -------------------------------------------------------------------------------


def _time_text(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def vitals(client: Client, filters: Filters = Filters(), *, database: str = DEFAULT_DATABASE
           ) -> dict[str, Any]:
    """The ``session_vitals`` figures for the time range, project, environment, service,
    agent and user of ``filters`` (its other filters do not apply to vitals)."""
    params = {
        "since": _time_text(filters.since), "until": _time_text(filters.until),
        "project": filters.project or "", "environment": filters.environment or "",
        "service": filters.service or "", "agent": filters.agent or "", "user": filters.user or "",
    }
    args = ", ".join(f"{name} = {{{name}:String}}" for name in params)
    rows = _rows(_query(client, f"SELECT * FROM {_table(database, names.SESSION_VITALS)}({args})", params))
    return rows[0]


def series(client: Client, filters: Filters, interval_s: int, *,
           database: str = DEFAULT_DATABASE, max_buckets: int = 2000) -> list[dict[str, Any]]:
    """Activity per time bucket of ``interval_s`` seconds: sessions with spans in it, LLM
    calls, cost, errored calls and the p95 call latency of the calls made in it.

    Read from ``otel_traces`` (a call belongs to the bucket it started in); the project,
    environment, service, agent and user filters apply to the spans.
    """
    until = filters.until or datetime.now(timezone.utc)
    since = filters.since or until - timedelta(days=1)
    if since >= until:
        raise QueryError("since must be before until")
    if (until - since).total_seconds() / interval_s > max_buckets:
        raise QueryError(
            f"interval too small for the time range: at most {max_buckets} buckets; "
            "use a larger interval or a shorter range")
    sql = _Sql()
    step = sql.bind(interval_s, "UInt32")
    first, last = sql.bind(_ns(since), "Int64"), sql.bind(_ns(until), "Int64")
    sql.where(f"Timestamp >= fromUnixTimestamp64Nano({first})")
    sql.where(f"Timestamp <= fromUnixTimestamp64Nano({last})")
    for column, value in (("Project", filters.project), ("Environment", filters.environment),
                          ("ServiceName", filters.service), ("UserId", filters.user)):
        if value is not None:
            sql.where(f"{column} = {sql.bind(value, 'String')}")
    if filters.agent is not None:
        agent = sql.bind(filters.agent, "String")
        sql.where(f"(AgentId = {agent} OR AgentName = {agent})")
    traces = _table(database, "otel_traces")
    return _rows(_query(
        client,
        f"SELECT toStartOfInterval(Timestamp, toIntervalSecond({step})) AS bucket,\n"
        "    uniqExact(SessionId) AS sessions, countIf(IsLlmCall) AS llm_calls,\n"
        "    sumIf(CostUsd, IsLlmCall) AS cost_usd, countIf(IsLlmCall AND IsError) AS errors,\n"
        "    if(llm_calls > 0, quantileIf(0.95)(Duration / 1e6, IsLlmCall), 0) AS p95_call_latency_ms\n"
        f"FROM {traces} {sql.clause()}\nGROUP BY bucket\n"
        # every bucket of the range, the empty ones with zeros, so charts keep a time axis
        f"ORDER BY bucket WITH FILL FROM toStartOfInterval(toDateTime(fromUnixTimestamp64Nano({first})), "
        f"toIntervalSecond({step})) TO toDateTime(fromUnixTimestamp64Nano({last})) "
        f"STEP toIntervalSecond({step})",
        sql.parameters,
    ))


# --- users --------------------------------------------------------------------------------


def list_users(
    client: Client,
    filters: Filters = Filters(),
    sort: Sort | str = "-last_seen",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    *,
    database: str = DEFAULT_DATABASE,
) -> Page:
    """One row per end user of the sessions matching ``filters``: sessions, llm_calls,
    cost_usd, errors, last_seen (sessions without a user are left out)."""
    sort = Sort.parse(sort, USER_SORTS) if isinstance(sort, str) else sort
    _check_limit(limit)
    sort_sql, sort_type = USER_SORTS[sort.column]
    fingerprint = f"{filters.fingerprint()}:{sort}"
    inner = _Sql()
    _session_conditions(inner, filters, client, database)
    inner.where("user_id != ''")
    outer = _Sql()
    outer.parameters = inner.parameters  # one namespace: p0, p1 … continue
    if cursor:
        payload = _decode_cursor(cursor, "users", fingerprint)
        _keyset(outer, sort_sql, sort_type, ("user_id",), payload, sort.descending)
    direction = "DESC" if sort.descending else "ASC"
    rows = _rows(_query(
        client,
        f"SELECT *, {sort_sql} AS {_SORT_VALUE} FROM (\n"
        "  SELECT user_id, count() AS sessions, sum(llm_calls) AS llm_calls,\n"
        "      sum(cost_usd) AS cost_usd, sum(errors) AS errors, max(last_seen) AS last_seen\n"
        f"  FROM (SELECT * FROM {_table(database, names.SESSION_LIST)} {inner.clause()})\n"
        "  GROUP BY user_id)\n"
        f"{outer.clause()}\n"
        f"ORDER BY {_SORT_VALUE} {direction}, user_id {direction}\n"
        f"LIMIT {outer.bind(limit + 1, 'UInt32')}",
        outer.parameters,
    ))
    values = [row.pop(_SORT_VALUE) for row in rows]
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, _encode_cursor(
        {"k": "users", "f": fingerprint, "v": values[limit - 1], "key": [rows[-1]["user_id"]]}))
