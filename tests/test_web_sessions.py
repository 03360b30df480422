"""Who is who, end to end (docs/sessions.md, "Never merge strangers"): a FastAPI app with its
framework instrumentation, under the real ``opentelemetry-instrument`` launcher (httpx
instrumentation on, as users run it), calls the real openai SDK against the fake LLM server
and exports to the real collector. Anonymous visitors (distinct source addresses on loopback and User-Agents) and
logged-in users (one shared address and browser; the app records their id on the request's
span only) send requests slower than the app's export batch, so each request's first spans
and its LLM span reach the collector before its SERVER span. Every visitor gets their own
session, and no session mixes two visitors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from collector_setup import grpc_port, start_pipeline
from instr_fake_llm import FakeLLMServer
from web_chat import visit

from sessionlens import conventions as c
from sessionlens.storage import connect
from sessionlens.instrumentation.instrumentor import SCOPE

WEB_CHAT = Path(__file__).resolve().parent.parent / "examples" / "web_chat.py"
PAUSE = 0.25  # seconds, twice per request: well over the export batch's schedule delay
BATCH_DELAY_MS = 50
ANONYMOUS = [("127.0.0.2", "Mozilla/5.0 (X11; Linux) Firefox/140"),
             ("127.0.0.3", "Mozilla/5.0 (Macintosh) Safari/19"),
             ("127.0.0.4", "Mozilla/5.0 (Windows NT 10.0) Chrome/141")]
LOGGED_IN = ["alice", "bob", "carol", "dave"]
SHARED = ("127.0.0.5", "Mozilla/5.0 (X11; Linux) Firefox/140")  # one office, one browser
REQUESTS_EACH = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _visit(port: int, address: str, agent: str, user: str | None, failures: list[str]) -> None:
    replies = visit(f"http://127.0.0.1:{port}", address, agent, user, REQUESTS_EACH)
    if replies != ["Hello there"] * REQUESTS_EACH:
        failures.append(f"{address} {user}: {replies}")


@pytest.fixture
def app_spans(chdb_url, database, tmp_path):
    """Run the visits; the spans as stored: one dict per span."""
    pipeline = start_pipeline(chdb_url, database, tmp_path / "spool")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME="webchat",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port(pipeline)}",
        OTEL_BSP_SCHEDULE_DELAY=str(BATCH_DELAY_MS),
        OTEL_PYTHON_FASTAPI_EXCLUDED_URLS="health",
    )
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    with FakeLLMServer() as llm:
        app = subprocess.Popen(
            [str(launcher), sys.executable, str(WEB_CHAT), str(port), llm.url, str(PAUSE)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert app.poll() is None, app.communicate()[1]
                assert time.monotonic() < deadline, "the app did not start"
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            failures: list[str] = []
            visits = [(address, agent, None) for address, agent in ANONYMOUS]
            visits += [(*SHARED, user) for user in LOGGED_IN]
            threads = [threading.Thread(target=_visit, args=(port, *visit, failures)) for visit in visits]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not failures, failures
        finally:
            app.terminate()  # the SDK exports what is left on its way out
            _, stderr = app.communicate(timeout=30)
    client = connect(chdb_url, database=database)
    expected_llm = len(visits) * REQUESTS_EACH
    deadline = time.monotonic() + 30
    query = (
        "SELECT TraceId AS trace, SpanName AS name, SpanKind AS kind, ScopeName AS scope,"
        " SpanAttributes AS attrs FROM otel_traces WHERE ServiceName = 'webchat'"
    )
    while True:
        result = client.query(query)
        spans = [dict(zip(result.column_names, row)) for row in result.result_rows]
        if sum(s["scope"] == SCOPE for s in spans) >= expected_llm and sum(s["kind"] == "Server" for s in spans) >= expected_llm:
            break
        assert time.monotonic() < deadline, f"spans missing: {len(spans)} stored; app stderr: {stderr[-2000:]}"
        time.sleep(0.2)
    client.close()
    pipeline.shutdown()
    return spans


def test_every_visitor_gets_their_own_session_and_no_session_mixes_two(app_spans) -> None:
    spans = app_spans
    # Who sent each request, as the framework recorded it on the request's SERVER span.
    visitor: dict[str, str] = {}
    for s in spans:
        if s["kind"] == "Server":
            a = s["attrs"]
            visitor[s["trace"]] = a.get("enduser.id") or f"{a['net.peer.ip']} {a['http.user_agent']}"
    assert sorted(set(visitor.values())) == sorted(LOGGED_IN + [f"{a} {ua}" for a, ua in ANONYMOUS])
    assert all(list(visitor.values()).count(v) == REQUESTS_EACH for v in visitor.values())

    # Every span is keyed by who sent its request, none by instance.
    assert {s["attrs"][c.SESSION_SOURCE] for s in spans} <= {c.SOURCE_AUTO_USER, c.SOURCE_AUTO_FINGERPRINT}
    assert all(s["attrs"][c.SERVES_REQUESTS] == "true" for s in spans)
    llm = [s for s in spans if s["scope"] == SCOPE]
    assert len(llm) == len(visitor)

    def sessions_of(who: str, keep) -> set[str]:
        return {s["attrs"][c.SESSION_ID] for s in spans if visitor[s["trace"]] == who and keep(s)}

    # the LLM call, its HTTP span, the request and its response
    after_auth = lambda s: not s["name"].endswith(" receive")  # noqa: E731
    own: dict[str, str] = {}
    for who in set(visitor.values()):
        (session,) = sessions_of(who, after_auth)  # one session for both requests of a visitor
        own[who] = session
    assert len(set(own.values())) == len(own), "two visitors share a session"
    for s in llm:  # the LLM span itself says who: copied from the request's SERVER span
        who = visitor[s["trace"]]
        if who in LOGGED_IN:
            assert s["attrs"][c.USER_ID] == who and s["attrs"][c.SESSION_SOURCE] == c.SOURCE_AUTO_USER
        else:
            assert f"{s['attrs'][c.CLIENT_ADDRESS]} {s['attrs'][c.USER_AGENT]}" == who
            assert s["attrs"][c.SESSION_SOURCE] == c.SOURCE_AUTO_FINGERPRINT

    # No session holds spans of two visitors' requests — but for the spans that ended
    # before the app knew the user (reading the body precedes the auth dependency): they
    # name no user, and go to the session of the address and browser they came from.
    members: dict[str, set[str]] = {}
    for s in spans:
        members.setdefault(s["attrs"][c.SESSION_ID], set()).add(visitor[s["trace"]])
    for session, who in members.items():
        if len(who) > 1:
            early = [s for s in spans if s["attrs"][c.SESSION_ID] == session]
            assert who <= set(LOGGED_IN), f"anonymous visitors merged: {who}"
            assert all(s["name"].endswith(" receive") and c.USER_ID not in s["attrs"] for s in early), (
                f"session {session} mixes {who}")
    # Each anonymous visitor's requests are one session, every span of them.
    for address, agent in ANONYMOUS:
        assert len(sessions_of(f"{address} {agent}", lambda s: True)) == 1
