"""The three session views over spans written the way a stock OTel Collector writes them.

Only the clickhouseexporter's columns are inserted (attributes in the two maps); every
session column, the rollup and the costs come from the schema itself.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from sessionlens.storage import connect
from sessionlens.schema.migrate import SchemaOptions, apply
from sessionlens.schema.prices import PriceBook, cost_usd, load_price_rows

MS = 1_000_000  # ns

COLUMNS = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
    "Duration", "StatusCode", "StatusMessage",
]
ACME_PROD = {"service.name": "chatbot", "sessionlens.project": "acme",
             "deployment.environment.name": "prod"}


def span(start, trace, span_id, name, attrs, duration_ms, *, parent="", service="chatbot",
         resource=ACME_PROD, status="Unset", message=""):
    return [start, trace, span_id, parent, "", name, "Client", service, dict(resource),
            "test", "1", {k: str(v) for k, v in attrs.items()}, duration_ms * MS, status, message]


def chat(model, inp, out, **extra):
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out, **extra}



def _timeline(now: datetime) -> None:
    """Set NOW and every span time from it: the store fixture calls it again, so a session's
    status (against the 30 min timeout) does not depend on how long the suite ran before."""
    global NOW, A0, B_END, D_END, SPANS, R0, COUNTING
    NOW = now.replace(microsecond=0)
    A0 = NOW - timedelta(seconds=60)
    B_END = NOW - timedelta(minutes=31)  # just past the 30 min inactivity timeout
    D_END = NOW - timedelta(minutes=25)  # within it
    R0 = NOW - timedelta(seconds=120)
    SPANS = _spans()
    COUNTING = _counting()

SA = {"session.id": "S_A", "user.id": "alice", "sessionlens.session.name": "Ticket 42"}
PLANNER = {**SA, "gen_ai.agent.id": "planner", "sessionlens.run.id": "r1"}
RESEARCHER = {**SA, "gen_ai.agent.id": "researcher", "sessionlens.run.id": "r2"}
def _spans():
    return [
        # S_A: an agent span wrapping LLM calls (its own tokens must not count), a retried call
        span(A0, "tA1", "a0", "invoke_agent planner",
             {**PLANNER, "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 5000},
             10_000),
        span(A0 + timedelta(seconds=1), "tA1", "a1", "chat gpt-4o",
             {**PLANNER, **chat("gpt-4o-2024-08-06", 1000, 100),
              "gen_ai.usage.cache_read.input_tokens": 200, "sessionlens.session.path": "plan/draft",
              "gen_ai.response.finish_reasons": json.dumps(["stop"]),
              "gen_ai.response.time_to_first_chunk": 0.25,
              "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'},
             1200, parent="a0"),
        span(A0 + timedelta(seconds=3), "tA1", "a2", "chat gpt-4o-mini",
             {**PLANNER, **chat("gpt-4o-mini", 0, 0)}, 300, parent="a0", status="Error",
             message="429 rate limited"),
        span(A0 + timedelta(seconds=4), "tA1", "a3", "chat gpt-4o-mini",
             {**PLANNER, **chat("gpt-4o-mini", 500, 50)}, 800, parent="a0"),
        span(A0 + timedelta(seconds=20), "tA2", "a4", "invoke_agent researcher",
             {**RESEARCHER, "gen_ai.operation.name": "invoke_agent"}, 5_000),
        # aliases a non-sessionlens instrumentation would write
        span(A0 + timedelta(seconds=21), "tA2", "a5", "chat claude",
             {**RESEARCHER, "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
              "gen_ai.request.model": "claude-3-5-sonnet-20241022",
              "gen_ai.usage.prompt_tokens": 2000, "gen_ai.usage.completion_tokens": 300},
             1500, parent="a4"),
        # a span that carries its own cost: it wins over the price table
        span(A0 + timedelta(seconds=23), "tA2", "a6", "chat gpt-4o",
             {**RESEARCHER, **chat("gpt-4o", 1000, 100), "gen_ai.usage.cost": 0.5}, 900, parent="a4"),
        # S_B: session and user through aliases, environment as an old-style resource key,
        # an unknown model; last activity 31 minutes ago
        span(B_END - timedelta(minutes=9), "tB1", "b1", "llm mystery",
             {"langfuse.session.id": "S_B", "enduser.id": "bob", "gen_ai.request.model": "mystery-model",
              "llm.token_count.prompt": 100, "llm.token_count.completion": 10},
             2000, service="batch",
             resource={"sessionlens.project": "acme", "deployment.environment": "staging"}),
        span(B_END - timedelta(seconds=3), "tB2", "b2", "chat gemini",
             {"langfuse.session.id": "S_B", "enduser.id": "bob", **chat("gemini-2.5-flash", 10000, 1000)},
             3000, service="batch",
             resource={"sessionlens.project": "acme", "deployment.environment": "staging"}),
        # S_D: one call whose end is 25 minutes ago
        span(D_END - timedelta(seconds=1), "tD", "d1", "chat gpt-4o-mini",
             {"session.id": "S_D", "user.id": "carol", **chat("gpt-4o-mini", 100, 10)}, 1000),
        # no session id at all (a stock writer with no sessionlens collector): a session per trace
        span(NOW - timedelta(minutes=10), "tC", "c1", "chat", chat("openai/gpt-4o-mini", 1000, 100),
             500, service="legacy", resource={"service.name": "legacy"}),
    ]

COST_A = (800 * 2.5 + 200 * 1.25 + 100 * 10) / 1e6 + (500 * 0.15 + 50 * 0.6) / 1e6 \
    + (2000 * 3 + 300 * 15) / 1e6 + 0.5
COST_B = (10000 * 0.30 + 1000 * 2.5) / 1e6
COST_D = (100 * 0.15 + 10 * 0.6) / 1e6
COST_C = (1000 * 0.15 + 100 * 0.6) / 1e6
ALL_PARAMS = dict.fromkeys(("since", "until", "project", "environment", "service", "agent", "user"), "")


@pytest.fixture
def store(chdb_url, database):
    _timeline(datetime.now(timezone.utc))
    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database))
    # three inserts split sessions S_A and S_B: the views must re-aggregate across blocks
    for batch in (SPANS[:3], SPANS[3:8], SPANS[8:]):
        client.insert(f"{database}.otel_traces", batch, column_names=COLUMNS)
    yield client, database
    client.close()


def rows(client, sql, **params):
    result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, r)) for r in result.result_rows]


def vitals(client, db, **filters):
    args = ", ".join(f"{k}={{{k}:String}}" for k in ALL_PARAMS)
    return rows(client, f"SELECT * FROM {db}.session_vitals({args})", **{**ALL_PARAMS, **filters})[0]


def test_session_list(store):
    client, db = store
    got = {r["session_id"]: r for r in rows(client, f"SELECT * FROM {db}.session_list")}
    assert sorted(got) == ["S_A", "S_B", "S_D", "tC"]
    a, b, d, c = got["S_A"], got["S_B"], got["S_D"], got["tC"]
    assert (a["session_name"], a["source"], a["project"], a["user_id"], a["environment"],
            a["service_name"]) == ("Ticket 42", "explicit", "acme", "alice", "prod", "chatbot")
    assert (a["trace_count"], a["llm_calls"], a["runs"], a["agents"]) == (2, 5, 2, ["planner", "researcher"])
    assert a["models"] == ["claude-3-5-sonnet-20241022", "gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini"]
    assert (a["input_tokens"], a["output_tokens"]) == (4500, 550)  # the agent span's 5000 not counted
    assert round(a["cost_usd"], 2) == 0.51 and a["cost_usd"] == pytest.approx(COST_A, abs=1e-12)
    assert (a["errors"], a["success_rate"]) == (1, 0.8)
    assert (a["cached_input_tokens"], a["unpriced_calls"], a["retries"], a["policy_events"]) == (200, 0, 0, 0)
    assert a["properties"] == {}
    assert a["avg_latency_ms"] == pytest.approx(940)
    assert a["p95_latency_ms"] == pytest.approx(1440)  # 1200 + 0.8 * (1500 - 1200)
    assert a["duration_s"] == pytest.approx(25.0)  # a4 (20 s + 5 s) ends last
    assert a["status"] == "active"

    assert (b["user_id"], b["environment"], b["service_name"]) == ("bob", "staging", "batch")
    assert (b["input_tokens"], b["output_tokens"], b["llm_calls"]) == (10100, 1010, 2)
    assert b["cost_usd"] == pytest.approx(COST_B, abs=1e-12)  # mystery-model costs 0
    assert b["unpriced_calls"] == 1  # ... and the total says it is incomplete
    assert b["p95_latency_ms"] == pytest.approx(2950)
    assert b["status"] == "completed" and d["status"] == "active"
    assert d["cost_usd"] == pytest.approx(COST_D, abs=1e-12)

    assert (c["source"], c["project"], c["service_name"]) == ("auto:trace", "", "legacy")
    assert c["cost_usd"] == pytest.approx(COST_C, abs=1e-12)  # provider/ prefix stripped


LIST_COLUMNS = [  # the public column order
    "session_id", "session_name", "source", "project", "user_id", "environment", "service_name",
    "first_seen", "last_seen", "duration_s", "status", "trace_count", "llm_calls", "runs",
    "agents", "models", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd",
    "unpriced_calls", "errors", "retries", "success_rate", "avg_latency_ms", "p95_latency_ms",
    "properties", "policy_events",
]
PAGE_PARAMS = dict.fromkeys(("project", "user", "environment", "status", "before"), "")


def page(client, db, limit=50, **filters):
    args = ", ".join(f"{k}={{{k}:String}}" for k in PAGE_PARAMS)
    return rows(client, f"SELECT * FROM {db}.session_list_page({args}, limit={{limit:UInt32}})",
                **{**PAGE_PARAMS, **filters}, limit=limit)


def test_session_list_page_is_the_list_sorted_by_last_activity(store):
    client, db = store
    full = rows(client, f"SELECT * FROM {db}.session_list ORDER BY last_seen DESC")
    assert list(full[0]) == LIST_COLUMNS
    got = page(client, db)
    assert list(got[0]) == LIST_COLUMNS
    # same rows, same values (cost, p95, models … of the page's sessions only)
    assert got == full
    assert [r["session_id"] for r in page(client, db, limit=2)] == ["S_A", "tC"]
    assert [r["session_id"] for r in page(client, db, project="acme")] == ["S_A", "S_D", "S_B"]
    assert [r["session_id"] for r in page(client, db, user="bob")] == ["S_B"]
    assert [r["session_id"] for r in page(client, db, environment="staging")] == ["S_B"]
    assert [r["session_id"] for r in page(client, db, status="completed")] == ["S_B"]
    assert [r["session_id"] for r in page(client, db, status="active")] == ["S_A", "tC", "S_D"]
    # the cursor: sessions whose last activity is before the last one shown
    cursor = got[1]["last_seen"].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert [r["session_id"] for r in page(client, db, before=cursor)] == ["S_D", "S_B"]
    assert page(client, db, user="nobody") == []


def test_session_vitals_with_filters(store):
    client, db = store
    v = vitals(client, db)
    assert list(v) == [
        "sessions", "active_sessions", "users", "llm_calls", "avg_calls_per_session",
        "total_cost_usd", "avg_cost_per_session", "p50_session_duration_s",
        "p95_session_duration_s", "p50_call_latency_ms", "p95_call_latency_ms", "error_rate",
        "total_tokens",
    ]
    assert (v["sessions"], v["active_sessions"], v["users"], v["llm_calls"]) == (4, 3, 3, 9)
    assert v["total_cost_usd"] == pytest.approx(COST_A + COST_B + COST_D + COST_C, abs=1e-12)
    assert v["avg_cost_per_session"] == pytest.approx(v["total_cost_usd"] / 4)
    assert v["avg_calls_per_session"] == 2.25
    assert v["error_rate"] == pytest.approx(1 / 9)
    assert v["total_tokens"] == 5050 + 11110 + 110 + 1100
    # calls: 300 500 800 900 1000 1200 1500 2000 3000 ms
    assert (v["p50_call_latency_ms"], v["p95_call_latency_ms"]) == pytest.approx((1000, 2600))
    assert vitals(client, db, user="alice")["sessions"] == 1
    # an agent's own share of the sessions it took part in, not the whole sessions'
    researcher = vitals(client, db, agent="researcher")
    assert (researcher["sessions"], researcher["llm_calls"], researcher["error_rate"]) == (1, 2, 0)
    assert researcher["total_cost_usd"] == pytest.approx((2000 * 3 + 300 * 15) / 1e6 + 0.5, abs=1e-12)
    assert researcher["total_tokens"] == 2300 + 1100
    assert (researcher["p50_call_latency_ms"], researcher["p95_call_latency_ms"]) == pytest.approx((1200, 1470))
    planner = vitals(client, db, agent="planner")
    assert (planner["llm_calls"], planner["error_rate"]) == (3, pytest.approx(1 / 3))
    assert vitals(client, db, environment="staging")["total_tokens"] == 11110
    assert vitals(client, db, project="acme")["sessions"] == 3
    assert vitals(client, db, service="legacy")["sessions"] == 1
    since = (NOW - timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M:%S")
    assert vitals(client, db, since=since)["sessions"] == 2  # S_A and tC
    until = (NOW - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    assert vitals(client, db, until=until)["sessions"] == 1  # only S_B started before
    empty = vitals(client, db, user="nobody")
    assert (empty["sessions"], empty["total_cost_usd"], empty["p95_call_latency_ms"]) == (0, 0, 0)


def test_session_detail(store):
    client, db = store
    spans = rows(client, f"SELECT * FROM {db}.session_detail(session_id={{s:String}}, project={{p:String}})",
                 s="S_A", p="acme")
    assert [s["span_id"] for s in spans] == ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]
    a0, a1, a2 = spans[0], spans[1], spans[2]
    assert (a0["operation"], a0["agent_id"], a0["run_id"], a0["cost_usd"]) == ("invoke_agent", "planner", "r1", 0)
    assert (a1["model"], a1["parent_span_id"], a1["path"], a1["finish_reasons"]) == (
        "gpt-4o-2024-08-06", "a0", "plan/draft", ["stop"])
    assert a1["cost_usd"] == pytest.approx(0.00325, abs=1e-12)
    assert a1["time_to_first_chunk_ms"] == pytest.approx(250)
    assert a1["duration_ms"] == 1200 and '"hi"' in a1["input_messages"]
    assert (a2["status"], a2["status_message"]) == ("Error", "429 rate limited")
    assert spans[5]["provider"] == "anthropic" and spans[5]["input_tokens"] == 2000
    assert spans[6]["cost_usd"] == 0.5
    assert rows(client, f"SELECT * FROM {db}.session_detail(session_id='nope', project='acme')") == []
    # scoped by project: another project's reader never sees the session
    assert rows(client, f"SELECT * FROM {db}.session_detail(session_id='S_A', project='')") == []
    assert len(rows(client, f"SELECT * FROM {db}.session_detail(session_id='tC', project='')")) == 1


def test_price_update_by_insert_reprices_views_and_unpriced_models(store):
    client, db = store
    assert rows(client, f"SELECT * FROM {db}.unpriced_models") == [{"model": "mystery-model", "calls": 1}]
    client.command(
        f"INSERT INTO {db}.model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok)"
        " VALUES ('gpt-4o-mini', 1.0, 2.0, 0.5), ('Mystery-Model', 10, 20, 10)")
    client.command(f"SYSTEM RELOAD DICTIONARY {db}.model_prices_dict")
    d = rows(client, f"SELECT cost_usd FROM {db}.session_list WHERE session_id = 'S_D'")[0]
    assert d["cost_usd"] == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6, abs=1e-12)
    b = rows(client, f"SELECT cost_usd FROM {db}.session_list WHERE session_id = 'S_B'")[0]
    assert b["cost_usd"] == pytest.approx(COST_B + (100 * 10 + 10 * 20) / 1e6, abs=1e-12)
    assert rows(client, f"SELECT * FROM {db}.unpriced_models") == []


def test_replayed_insert_with_dedup_token_is_counted_once(store):
    client, db = store
    extra = [span(NOW, "tE", "e1", "chat", {"session.id": "S_E", **chat("gpt-4o", 10, 1)}, 100)]
    for _ in range(2):
        client.insert(f"{db}.otel_traces", extra, column_names=COLUMNS,
                      settings={"insert_deduplication_token": "batch-1"})
    got = rows(client, f"SELECT llm_calls, input_tokens, models, cost_usd FROM {db}.session_list "
                       "WHERE session_id = 'S_E'")
    assert got == [{"llm_calls": 1, "input_tokens": 10, "models": ["gpt-4o"],
                    "cost_usd": pytest.approx((10 * 2.5 + 1 * 10) / 1e6, abs=1e-15)}]
    assert len(rows(client, f"SELECT * FROM {db}.session_detail(session_id='S_E', project='acme')")) == 1
    assert vitals(client, db, user="")["llm_calls"] == 10
    assert client.command(f"SELECT count() FROM {db}.otel_traces WHERE SpanId = 'e1'") == 1
    # every rollup drops the replayed block (one row each: nothing to merge yet)
    for table in ("sessions", "session_spans"):
        assert client.command(
            f"SELECT count() FROM {db}.otel_traces_{table} WHERE SessionId = 'S_E'") == 1, table


NAMES = ["GPT-4o", "openai/gpt-4o-mini", "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022",
         "claude-sonnet-4-5@20250929", "models/gemini-2.5-pro", "command-a-03-2025",
         "my-model-20240101", "Meta-Llama/Llama-3.3-70B-Instruct", "", "x/"]


def test_sql_and_python_price_a_model_name_the_same(store):
    """otel_traces.CostUsd prices a model name by the rule of ``prices.PriceBook``."""
    client, db = store
    book = PriceBook(load_price_rows(client, f"{db}.model_prices_resolved"))
    batch = [span(NOW, "tP", f"p{i}", "chat", {"session.id": "S_P", **chat(name, 1_000_000, 1000)}, 10)
             for i, name in enumerate(NAMES)]
    client.insert(f"{db}.otel_traces", batch, column_names=COLUMNS)
    result = client.query(f"SELECT SpanId, CostUsd, toDate(Timestamp, 'UTC') FROM {db}.otel_traces "
                          "WHERE TraceId = 'tP'").result_rows
    got = {span_id: cost for span_id, cost, _ in result}
    for i, name in enumerate(NAMES):
        price = book.price("", "", name, result[0][2])
        want = 0.0 if price is None else cost_usd(price, 1_000_000, 1000)
        assert got[f"p{i}"] == pytest.approx(want, abs=1e-12), name
    assert any(got.values()) and not all(got.values())  # some names priced, some not


# --- what counts (docs/counting.md): retries, final-attempt errors, transport spans, properties

HTTPX = "opentelemetry.instrumentation.httpx"


def attempt(offset_s, span_id, agent, *, resend=0, ok=True, trace="tR1", model="gpt-4o-mini",
            tokens=(0, 0), message="", **extra):
    attrs = {"session.id": "S_R", "gen_ai.agent.id": agent, **chat(model, *tokens), **extra}
    if resend:
        attrs["http.request.resend_count"] = resend
    return span(R0 + timedelta(seconds=offset_s), trace, span_id, "chat", attrs, 100,
                status="Unset" if ok else "Error", message=message)


def transport(offset_s, span_id, parent, *, ok=True, trace="tR1"):
    """The httpx instrumentation's POST span under an LLM span (as opentelemetry-instrument adds it)."""
    row = span(R0 + timedelta(seconds=offset_s), trace, span_id, "POST",
               {"session.id": "S_R", "http.request.method": "POST", "http.response.status_code": 200 if ok else 429,
                "url.full": "http://127.0.0.1/v1/chat/completions"}, 90, parent=parent,
               status="Unset" if ok else "Error")
    row[COLUMNS.index("ScopeName")] = HTTPX
    return row


def _counting():
    return [
        # call 1 (agent a1): a 429, then a retry that succeeds — 1 call, 1 retry, 0 errors
        attempt(0, "r1a", "a1", ok=False, message="HTTP 429", **{"sessionlens.property.tier": "free"}),
        transport(0, "r1a-http", "r1a", ok=False),
        attempt(1, "r1b", "a1", resend=1, tokens=(100, 10), **{"sessionlens.property.region": "eu"}),
        transport(1, "r1b-http", "r1b"),
        # call 2 (agent a1): fails after all retries — 1 call, 2 retries, 1 error
        attempt(10, "r2a", "a1", ok=False, trace="tR2"),
        attempt(11, "r2b", "a1", resend=1, ok=False, trace="tR2"),
        attempt(12, "r2c", "a1", resend=2, ok=False, trace="tR2"),
        # call 3 (agent a2): stopped by the content filter — a policy event, not an error
        attempt(20, "r3", "a2", tokens=(50, 0), trace="tR3",
                **{"gen_ai.response.finish_reasons": json.dumps(["content_filter"]),
                   "sessionlens.property.tier": "pro"}),
        # call 4 (agent a2): refused with a policy error — an error and a policy event
        attempt(30, "r4", "a2", ok=False, trace="tR4", model="gpt-4o",
                message="Error code: 400 - {'error': {'code': 'content_policy_violation'}}"),
        # an HTTP client span the app made itself (no LLM parent): not a call, not transport
        transport(40, "app-http", "", trace="tR5"),
    ]


_timeline(datetime.now(timezone.utc))


@pytest.fixture
def counting(store):
    client, db = store
    # the failed attempt and its retry land in different insert blocks: sums stay exact
    for batch in (COUNTING[:1], COUNTING[1:5], COUNTING[5:]):
        client.insert(f"{db}.otel_traces", batch, column_names=COLUMNS)
    return client, db


def test_retries_final_errors_and_transport_spans_count_by_the_rules(counting):
    client, db = counting
    (r,) = rows(client, f"SELECT * FROM {db}.session_list WHERE session_id = 'S_R'")
    assert (r["llm_calls"], r["retries"], r["errors"]) == (4, 3, 2)
    assert r["success_rate"] == 0.5
    assert r["policy_events"] == 2
    assert (r["input_tokens"], r["output_tokens"]) == (150, 10)
    assert r["cost_usd"] == pytest.approx((100 * 0.15 + 10 * 0.6 + 50 * 0.15) / 1e6, abs=1e-15)
    # the latest value of each property name
    assert r["properties"] == {"tier": "pro", "region": "eu"}
    assert r["trace_count"] == 5
    (page_row,) = [p for p in page(client, db) if p["session_id"] == "S_R"]
    assert page_row == r


def test_a_429_then_success_is_one_call_one_retry_no_error(counting):
    client, db = counting
    # just the first call's spans in a session of their own
    spans = [list(row) for row in COUNTING[:4]]
    for row in spans:
        row[COLUMNS.index("SpanAttributes")] = {**row[COLUMNS.index("SpanAttributes")], "session.id": "S_429"}
        row[COLUMNS.index("SpanId")] += "-429"
    client.insert(f"{db}.otel_traces", spans, column_names=COLUMNS)
    (r,) = rows(client, f"SELECT llm_calls, retries, errors, success_rate FROM {db}.session_list "
                        "WHERE session_id = 'S_429'")
    assert r == {"llm_calls": 1, "retries": 1, "errors": 0, "success_rate": 1.0}


def test_detail_marks_transport_spans_and_retries(counting):
    client, db = counting
    spans = {s["span_id"]: s for s in rows(
        client, f"SELECT * FROM {db}.session_detail(session_id='S_R', project='acme')")}
    assert {k for k, s in spans.items() if s["is_transport"]} == {"r1a-http", "r1b-http"}
    assert (spans["r1b"]["resend_count"], spans["r2c"]["resend_count"], spans["r1a"]["resend_count"]) == (1, 2, 0)
    assert spans["app-http"]["is_transport"] == 0  # no LLM span above it


def test_breakdown_gives_each_key_its_own_figures(counting):
    client, db = counting
    got = rows(client, f"SELECT * FROM {db}.session_breakdown(session_id={{s:String}}, project={{p:String}})",
               s="S_R", p="acme")
    by = {(r["dimension"], r["key"]): r for r in got}
    a1, a2 = by[("agent", "a1")], by[("agent", "a2")]
    assert (a1["llm_calls"], a1["retries"], a1["errors"], a1["input_tokens"], a1["output_tokens"]) == (2, 3, 1, 100, 10)
    assert (a2["llm_calls"], a2["retries"], a2["errors"], a2["input_tokens"]) == (2, 0, 1, 50)
    assert a1["cost_usd"] == pytest.approx((100 * 0.15 + 10 * 0.6) / 1e6, abs=1e-15)
    assert a1["avg_latency_ms"] == 100
    assert (by[("model", "gpt-4o-mini")]["llm_calls"], by[("model", "gpt-4o")]["errors"]) == (3, 1)
    # every dimension sums to the session's totals
    (total,) = rows(client, f"SELECT * FROM {db}.session_list WHERE session_id = 'S_R'")
    for dimension in ("agent", "model", "path", "run"):
        part = [r for r in got if r["dimension"] == dimension]
        for figure in ("llm_calls", "retries", "errors", "input_tokens", "output_tokens", "cached_input_tokens"):
            assert sum(r[figure] for r in part) == total[figure], (dimension, figure)
        assert sum(r["cost_usd"] for r in part) == pytest.approx(total["cost_usd"], abs=1e-15)
    assert rows(client, f"SELECT * FROM {db}.session_breakdown(session_id='S_R', project='other')") == []


def test_the_read_layer_breakdown_counts_as_the_view_does(counting):
    from sessionlens.schema import queries

    client, db = counting
    got = queries.breakdown(client, "acme", "S_R", database=db)
    by_agent = {r["key"]: r for r in got["by_agent"]}
    # retried attempts are retries, not calls; errors are calls whose final attempt failed
    assert (by_agent["a1"]["llm_calls"], by_agent["a1"]["errors"]) == (2, 1)
    (total,) = rows(client, f"SELECT llm_calls, errors FROM {db}.session_list WHERE session_id = 'S_R'")
    for name, part in got.items():
        assert sum(r["llm_calls"] for r in part) == total["llm_calls"], name
        assert sum(r["errors"] for r in part) == total["errors"], name
    assert queries.breakdown(client, "other", "S_R", database=db) == {name: [] for name in queries.BREAKDOWNS}


def test_vitals_of_one_agent_are_its_own_share(counting):
    client, db = counting
    a1 = vitals(client, db, agent="a1")
    assert (a1["sessions"], a1["llm_calls"], a1["error_rate"], a1["total_tokens"]) == (1, 2, 0.5, 110)
    assert a1["total_cost_usd"] == pytest.approx((100 * 0.15 + 10 * 0.6) / 1e6, abs=1e-15)
    everyone = vitals(client, db, project="acme")
    assert everyone["llm_calls"] == 8 + 4  # S_A 5, S_B 2, S_D 1, S_R 4


def test_numbers_from_any_writer_stay_sane(store):
    """A stock OTel Collector writes whatever the app sent: NaN, infinite, negative costs are
    ignored (the span is priced instead); token counts beyond Int64 are clamped, not 0."""
    client, db = store
    bad = [
        span(NOW, "tX", "x1", "chat", {"session.id": "S_X", **chat("gpt-4o-mini", "1e30", 10),
                                       "gen_ai.usage.cost": "nan"}, 10),
        span(NOW, "tX", "x2", "chat", {"session.id": "S_X", **chat("gpt-4o-mini", "18446744073709551616", -5),
                                       "gen_ai.usage.cost": "-1"}, 10),
        span(NOW, "tX", "x3", "chat", {"session.id": "S_X", **chat("gpt-4o-mini", "nan", "inf"),
                                       "gen_ai.usage.cost": "inf"}, 10),
    ]
    client.insert(f"{db}.otel_traces", bad, column_names=COLUMNS)
    (r,) = rows(client, f"SELECT * FROM {db}.session_list WHERE session_id = 'S_X'")
    cap = 10**12
    assert (r["llm_calls"], r["input_tokens"], r["output_tokens"]) == (3, 2 * cap, 10)
    assert r["cost_usd"] == pytest.approx((2 * cap * 0.15 + 10 * 0.6) / 1e6)
    assert r["unpriced_calls"] == 0
    v = vitals(client, db, project="acme")
    assert v["total_tokens"] > 2 * cap and v["total_cost_usd"] > 0


def test_status_follows_the_stored_inactivity_timeout(store):
    """One source of truth: an existing store follows a changed timeout, views untouched."""
    client, db = store
    status = f"SELECT status FROM {db}.session_list WHERE session_id = 'S_D'"
    assert client.command(status) == "active"  # 25 min ago, default 30 min
    apply(client, SchemaOptions(database=db, inactivity_timeout=3))
    assert client.command(status) == "completed"
    assert vitals(client, db)["active_sessions"] == 0
    assert [r["session_id"] for r in page(client, db, status="completed")] == ["S_A", "tC", "S_D", "S_B"]
    apply(client, SchemaOptions(database=db, inactivity_timeout=3600))
    assert client.command(status) == "active"
    apply(client, SchemaOptions(database=db))  # no timeout given: the stored one stays
    assert client.command(status) == "active"


def test_readme_query_sql_runs_as_written(store, chdb_url):
    """The README's "Query the sessions" SQL, in database otel as written (here: the test's)."""
    from pathlib import Path

    client, db = store
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Query the sessions", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    statements = [s.strip() for s in block.split(";\n") if s.strip()]
    assert len(statements) == 6
    for statement in statements:
        assert "otel." in statement
        client.query(statement.rstrip(";").replace("otel.", f"{db}."))
    (python,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert 'database="otel"' in python and 'connect("chdb://data/clickhouse"' in python
    namespace: dict = {}
    exec(python.replace("chdb://data/clickhouse", chdb_url).replace('database="otel"', f"database={db!r}"),
         namespace)
    assert namespace["page"].row_count == 4 and namespace["detail"].row_count == 0
