"""Who a request is from: the local root SERVER span's identity reaches the spans of its
request, LLM spans above all, and a request-serving process marks its spans (docs/sessions.md)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from instr_support import Telemetry
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

import sessionlens
from sessionlens import conventions as c
from sessionlens.instrumentation import identity
from sessionlens.instrumentation.identity import REQUESTS, Requests

pytest_plugins = ("instr_fixtures",)
MESSAGES = [{"role": "user", "content": "hi"}]
# What the ASGI/WSGI instrumentations record by default (HTTP conventions before v1.20).
OLD_NAMES = {"net.peer.ip": "198.51.100.23", "http.user_agent": "Mozilla/5.0 (X11)", "http.method": "POST"}


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has served no request yet (the registry is process-wide)."""
    monkeypatch.setattr(REQUESTS, "serving", False)
    monkeypatch.setattr(REQUESTS, "_roots", {})


@pytest.fixture
def web(tel: Telemetry, fresh: None) -> Iterator[Telemetry]:
    yield tel


def chat(client: openai.OpenAI, **kwargs: object) -> object:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)  # type: ignore[call-overload]


def test_the_llm_span_gets_the_visitor_of_its_request_and_the_serving_mark(web: Telemetry, oai: openai.OpenAI) -> None:
    with web.tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes=OLD_NAMES) as server:
        with web.tracer.start_as_current_span("parse body"):  # before the app knows the user
            pass
        server.set_attribute("enduser.id", "alice")  # the app's auth, mid-request
        chat(oai)
    (llm,) = web.llm_spans()
    assert llm.attributes[c.CLIENT_ADDRESS] == "198.51.100.23"
    assert llm.attributes[c.USER_AGENT] == "Mozilla/5.0 (X11)"
    assert llm.attributes[c.USER_ID] == "alice"
    assert llm.attributes[c.SERVES_REQUESTS] is True
    spans = {s.name: s for s in web.spans()}
    parse = spans["parse body"]
    assert parse.attributes[c.CLIENT_ADDRESS] == "198.51.100.23"
    assert c.USER_ID not in parse.attributes  # not known yet when it started
    assert parse.attributes[c.SERVES_REQUESTS] is True
    assert c.CLIENT_ADDRESS not in spans["POST /chat"].attributes  # the root keeps its own names
    assert REQUESTS.root(server.get_span_context().trace_id) is None  # forgotten at its end


def test_stable_names_win_over_old_ones_and_user_id_over_enduser_id(web: Telemetry, oai: openai.OpenAI) -> None:
    attrs = {**OLD_NAMES, c.CLIENT_ADDRESS: "203.0.113.8", c.USER_AGENT: "curl/8", "http.client_ip": "192.0.2.1",
             "enduser.id": "old", c.USER_ID: "new"}
    with web.tracer.start_as_current_span("GET /", kind=SpanKind.SERVER, attributes=attrs):
        chat(oai)
    (llm,) = web.llm_spans()
    assert (llm.attributes[c.CLIENT_ADDRESS], llm.attributes[c.USER_AGENT], llm.attributes[c.USER_ID]) == (
        "203.0.113.8", "curl/8", "new")


def test_what_the_call_says_itself_wins_over_the_request(web: Telemetry, oai: openai.OpenAI) -> None:
    root = {**OLD_NAMES, "enduser.id": "visitor"}
    with web.tracer.start_as_current_span("POST /a", kind=SpanKind.SERVER, attributes=root):
        chat(oai, user="body-user")
        chat(oai, extra_headers={"X-User-ID": "header-user"})
        with sessionlens.session(user_id="context-user"):
            chat(oai)
            with web.tracer.start_as_current_span("tool"):
                pass
    users = [s.attributes[c.USER_ID] for s in web.llm_spans()]
    assert users == ["body-user", "header-user", "context-user"]
    (tool,) = [s for s in web.spans() if s.name == "tool"]
    assert tool.attributes[c.USER_ID] == "context-user"


def test_a_remote_parent_makes_a_local_root_a_nested_server_span_does_not(web: Telemetry, oai: openai.OpenAI) -> None:
    remote = SpanContext(0x1234, 0x99, is_remote=True, trace_flags=TraceFlags(1))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    with web.tracer.start_as_current_span("POST /in", context=parent, kind=SpanKind.SERVER,
                                          attributes={"http.client_ip": "192.0.2.50"}):
        with web.tracer.start_as_current_span("mounted app", kind=SpanKind.SERVER,
                                              attributes={"net.peer.ip": "10.0.0.1"}):
            chat(oai)
    (llm,) = web.llm_spans()
    assert llm.context.trace_id == 0x1234
    assert llm.attributes[c.CLIENT_ADDRESS] == "192.0.2.50"


def test_a_streamed_call_read_after_the_request_ended_keeps_its_visitor(web: Telemetry, oai: openai.OpenAI) -> None:
    with web.tracer.start_as_current_span("GET /stream", kind=SpanKind.SERVER, attributes=OLD_NAMES):
        stream = chat(oai, stream=True)
    for _ in stream:  # type: ignore[attr-defined]
        pass
    (llm,) = web.llm_spans()
    assert llm.attributes[c.CLIENT_ADDRESS] == "198.51.100.23"


def test_a_process_that_serves_no_request_marks_nothing(web: Telemetry, oai: openai.OpenAI) -> None:
    with web.tracer.start_as_current_span("job", kind=SpanKind.INTERNAL, attributes=OLD_NAMES):
        chat(oai)
    (llm,) = web.llm_spans()
    assert c.SERVES_REQUESTS not in llm.attributes
    assert c.CLIENT_ADDRESS not in llm.attributes
    # a call outside any request of a serving process is marked, with no one's identity
    with web.tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER, attributes=OLD_NAMES):
        pass
    web.exporter.clear()
    chat(oai)
    (later,) = web.llm_spans()
    assert later.attributes[c.SERVES_REQUESTS] is True
    assert c.CLIENT_ADDRESS not in later.attributes


class _Span:
    """The few SDK span fields the registry reads."""

    def __init__(self, trace_id: int, span_id: int) -> None:
        self.parent = None
        self.context = SpanContext(trace_id, span_id, is_remote=False)


def test_the_registry_is_bounded_and_forgets_only_its_own_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "MAX_REQUESTS", 3)
    requests = Requests()
    spans = [_Span(t, 1) for t in range(1, 6)]
    for span in spans:
        requests.started(span)
    assert [requests.root(t) for t in range(1, 6)] == [None, None, *spans[2:]]  # oldest dropped
    requests.ended(_Span(5, 2))  # another SERVER span of trace 5 (a re-entrant request)
    assert requests.root(5) is spans[4]
    requests.ended(spans[4])
    assert requests.root(5) is None and requests.serving
