"""The OpenAPI 3.0 description of the sessions API, served at ``/v1/openapi.json``.

The tests check the running server against it (schemathesis), so it says exactly what
each endpoint accepts and answers. Session and span rows are the views' columns: the
columns every row has are required, later migrations may add more.
"""

from __future__ import annotations

from typing import Any

from sessionlens.schema import queries

_TIME = {"type": "string", "format": "date-time"}
_NUMBER = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}
_STRING = {"type": "string"}


def _query(name: str, description: str, schema: dict | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string", "maxLength": 1024}}


_TIME_DOC = "RFC 3339 time (2026-01-31T12:00:00Z) or a duration before now (30m, 24h, 7d)"
_TIME_SCHEMA = {"type": "string", "pattern": r"^(\d+(\.\d+)?[smhdw]|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))$"}
_TIME_PARAMS = [
    _query("since", f"sessions active at or after: {_TIME_DOC}", _TIME_SCHEMA),
    _query("until", f"sessions started at or before: {_TIME_DOC}", _TIME_SCHEMA),
]


def _sort(columns) -> dict:
    names = [c for name in columns for c in (name, f"-{name}")]
    return _query("sort", "sort column, - in front for descending (default -last_seen)",
                  {"type": "string", "enum": names})


_LIMIT = _query("limit", "rows per page", {"type": "integer", "minimum": 1,
                                           "maximum": queries.MAX_LIMIT, "default": queries.DEFAULT_LIMIT})
_CURSOR = _query("cursor", "next_cursor of the previous page (same filters and sort)")
_FILTERS = [
    *_TIME_PARAMS,
    _query("user", "end user id (user.id)"),
    _query("environment", "deployment.environment.name"),
    _query("service", "service.name of the session's first span"),
    _query("agent", "an agent id or name the session ran"),
    _query("model", "a model the session called"),
    _query("status", "active or completed", {"type": "string", "enum": list(queries.STATUSES)}),
    _query("source", "how the session was assigned: explicit, auto:user, auto:fingerprint, "
                     "auto:instance, auto:trace"),
    _query("name_contains", "part of the session name or id, any case"),
    _query("min_cost", "sessions costing at least this many USD",
           {"type": "number", "minimum": 0}),
    _query("has_errors", "true: sessions with errors; false: without",
           {"type": "string", "enum": ["true", "false"]}),
]

_SESSION_ROW = {
    "type": "object",
    "required": ["session_id", "session_name", "source", "project", "user_id", "environment",
                 "service_name", "first_seen", "last_seen", "duration_s", "status",
                 "trace_count", "llm_calls", "runs", "agents", "models", "input_tokens",
                 "output_tokens", "cost_usd", "errors", "success_rate", "avg_latency_ms",
                 "p95_latency_ms"],
    "properties": {
        "session_id": _STRING, "session_name": _STRING, "source": _STRING, "project": _STRING,
        "user_id": _STRING, "environment": _STRING, "service_name": _STRING,
        "first_seen": _TIME, "last_seen": _TIME, "duration_s": _NUMBER,
        "status": {"type": "string", "enum": list(queries.STATUSES)},
        "trace_count": _COUNT, "llm_calls": _COUNT, "runs": _COUNT,
        "agents": {"type": "array", "items": _STRING},
        "models": {"type": "array", "items": _STRING},
        "input_tokens": _COUNT, "output_tokens": _COUNT, "cost_usd": _NUMBER, "errors": _COUNT,
        "success_rate": _NUMBER, "avg_latency_ms": _NUMBER, "p95_latency_ms": _NUMBER,
        "properties": {"type": "object", "additionalProperties": _STRING},
    },
    "additionalProperties": True,
}
_SPAN_ROW = {
    "type": "object",
    "required": ["timestamp", "trace_id", "span_id", "parent_span_id", "span_name", "path",
                 "run_id", "agent_id", "model", "input_tokens", "output_tokens", "cost_usd",
                 "duration_ms", "status"],
    "properties": {
        "timestamp": _TIME, "trace_id": _STRING, "span_id": _STRING, "parent_span_id": _STRING,
        "span_name": _STRING, "path": _STRING, "run_id": _STRING, "agent_id": _STRING,
        "model": _STRING, "input_tokens": _COUNT, "output_tokens": _COUNT,
        "cost_usd": _NUMBER, "duration_ms": _NUMBER, "status": _STRING,
    },
    "additionalProperties": True,
}
_BREAKDOWN_ENTRY = {
    "type": "object",
    "required": ["key", "llm_calls", "input_tokens", "output_tokens", "cost_usd", "errors",
                 "avg_latency_ms"],
    "properties": {"key": _STRING, "llm_calls": _COUNT, "input_tokens": _COUNT,
                   "output_tokens": _COUNT, "cost_usd": _NUMBER, "errors": _COUNT,
                   "avg_latency_ms": _NUMBER},
}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": _STRING}}
_CURSOR_OUT = {"type": "string", "nullable": True}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "a bad parameter (the message says what is accepted)",
            401: "no valid bearer token", 404: "unknown session",
            503: "storage not ready, or too many requests / streams; see Retry-After"}
    return {str(code): _json({"$ref": "#/components/schemas/Error"}, text[code]) for code in codes}


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    secured = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "sessionlens sessions API", "version": "1",
                 "description": "Sessions, vitals and users of the LLM spans this collector "
                                "stored. Times are RFC 3339 UTC. With tokens configured every "
                                "/v1 request needs 'Authorization: Bearer <token>' and sees "
                                "only that token's project."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Session": _SESSION_ROW, "Span": _SPAN_ROW,
                        "BreakdownEntry": _BREAKDOWN_ENTRY, "Error": _ERROR},
        },
        "paths": {
            "/healthz": {"get": {"summary": "liveness (no auth)", "responses": {
                "200": _json({"type": "object", "required": ["status"],
                              "properties": {"status": {"type": "string", "enum": ["ok"]}}})}}},
            "/v1/sessions": {"get": {
                "summary": "sessions, filtered and sorted, one page",
                "security": secured,
                "parameters": [*_FILTERS, _sort(queries.SORTS), _LIMIT, _CURSOR],
                "responses": {
                    "200": _json({"type": "object", "required": ["sessions", "next_cursor"],
                                  "properties": {
                                      "sessions": {"type": "array",
                                                   "items": {"$ref": "#/components/schemas/Session"}},
                                      "next_cursor": _CURSOR_OUT}}),
                    **_errors(400, 401, 503)}}},
            "/v1/sessions/{session_id}": {"get": {
                "summary": "one session: row, a page of spans in time order, breakdowns",
                "security": secured,
                "parameters": [
                    {"name": "session_id", "in": "path", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 1024}},
                    _query("spans_limit", "spans per page",
                           {"type": "integer", "minimum": 1, "maximum": queries.MAX_SPANS_LIMIT,
                            "default": queries.DEFAULT_SPANS_LIMIT}),
                    _query("spans_cursor", "next_spans_cursor of the previous page"),
                ],
                "responses": {
                    "200": _json({"type": "object",
                                  "required": ["session", "spans", "next_spans_cursor", "breakdown"],
                                  "properties": {
                                      "session": {"$ref": "#/components/schemas/Session"},
                                      "spans": {"type": "array",
                                                "items": {"$ref": "#/components/schemas/Span"}},
                                      "next_spans_cursor": _CURSOR_OUT,
                                      "breakdown": {
                                          "type": "object",
                                          "required": list(queries.BREAKDOWNS),
                                          "properties": {name: {"type": "array", "items": {
                                              "$ref": "#/components/schemas/BreakdownEntry"}}
                                              for name in queries.BREAKDOWNS}}}}),
                    **_errors(400, 401, 404, 503)}}},
            "/v1/vitals": {"get": {
                "summary": "session vitals for a time range, and a series with interval",
                "security": secured,
                "parameters": [
                    *_TIME_PARAMS,
                    _query("user", "end user id"), _query("environment", "environment"),
                    _query("service", "service name"), _query("agent", "agent id or name"),
                    _query("interval", "bucket of the series: 1m to 366d (5m, 1h, 1d)",
                           {"type": "string", "pattern": r"^\d+(\.\d+)?[smhdw]$"}),
                ],
                "responses": {
                    "200": _json({"type": "object", "required": [
                        "sessions", "active_sessions", "users", "llm_calls", "total_cost_usd",
                        "error_rate", "total_tokens"],
                        "properties": {
                            "sessions": _COUNT, "active_sessions": _COUNT, "users": _COUNT,
                            "llm_calls": _COUNT, "total_cost_usd": _NUMBER,
                            "error_rate": _NUMBER, "total_tokens": _COUNT,
                            "series": {"type": "array", "items": {
                                "type": "object",
                                "required": ["bucket", "sessions", "llm_calls", "cost_usd",
                                             "errors", "p95_call_latency_ms"],
                                "properties": {"bucket": _TIME, "sessions": _COUNT,
                                               "llm_calls": _COUNT, "cost_usd": _NUMBER,
                                               "errors": _COUNT,
                                               "p95_call_latency_ms": _NUMBER}}}}}),
                    **_errors(400, 401, 503)}}},
            "/v1/users": {"get": {
                "summary": "end users with their sessions, calls, cost and errors",
                "security": secured,
                "parameters": [*_TIME_PARAMS, _sort(queries.USER_SORTS), _LIMIT, _CURSOR],
                "responses": {
                    "200": _json({"type": "object", "required": ["users", "next_cursor"],
                                  "properties": {"users": {"type": "array", "items": {
                                      "type": "object",
                                      "required": ["user_id", "sessions", "llm_calls", "cost_usd",
                                                   "errors", "last_seen"],
                                      "properties": {"user_id": _STRING, "sessions": _COUNT,
                                                     "llm_calls": _COUNT, "cost_usd": _NUMBER,
                                                     "errors": _COUNT, "last_seen": _TIME}}},
                                      "next_cursor": _CURSOR_OUT}}),
                    **_errors(400, 401, 503)}}},
            "/v1/events": {"get": {
                "summary": "Server-Sent Events: 'session' events carrying a session row "
                           "whenever newly stored spans create or change a session",
                "security": secured,
                "responses": {"200": {"description": "an event stream",
                                      "content": {"text/event-stream": {"schema": _STRING}}},
                              **_errors(400, 401, 503)}}},
        },
    }
