"""Session context: session()/run(), request headers, body user, baggage, content capture."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import openai
import pytest
from instr_fake_llm import FakeLLMServer
from instr_support import Telemetry, instrumented
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

import sessionlens
from sessionlens import conventions as c
from sessionlens.instrumentation.content import TRUNCATION_MARK
from sessionlens.instrumentation.context import current_attributes
from sessionlens.instrumentation.processor import SessionSpanProcessor

pytest_plugins = ("instr_fixtures",)
MESSAGES = [{"role": "user", "content": "hi"}]




def chat(client: openai.OpenAI, **kwargs: object) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)  # type: ignore[call-overload]


# --- headers ------------------------------------------------------------------------------

HEADER_CASES = [(header, key) for key, headers in c.HEADER_ATTRIBUTES.items() for header in headers]


@pytest.mark.parametrize(("header", "key"), HEADER_CASES, ids=[h for h, _ in HEADER_CASES])
def test_every_header_of_the_table_is_adopted(
    tel: Telemetry, oai: openai.OpenAI, server: FakeLLMServer, header: str, key: str
) -> None:
    sent = header.title()  # headers are matched case-insensitively
    chat(oai, extra_headers={sent: "v-" + header})
    assert tel.llm_spans()[0].attributes[key] == "v-" + header
    assert server.requests[-1][1].get(header) == "v-" + header  # read, never stripped


def test_property_headers_become_property_attributes(tel: Telemetry, oai: openai.OpenAI) -> None:
    chat(oai, extra_headers={"Helicone-Property-Tier": "gold", "X-Sessionlens-Property-Team": "core"})
    attrs = tel.llm_spans()[0].attributes
    assert attrs[c.PROPERTY_PREFIX + "tier"] == "gold" and attrs[c.PROPERTY_PREFIX + "team"] == "core"


def test_first_header_of_the_table_wins(tel: Telemetry, oai: openai.OpenAI) -> None:
    chat(oai, extra_headers={"session_id": "late", "X-Session-ID": "first"})
    assert tel.llm_spans()[0].attributes[c.SESSION_ID] == "first"


def test_precedence_context_over_headers_over_body(tel: Telemetry, oai: openai.OpenAI) -> None:
    chat(oai, user="body-user")
    chat(oai, user="body-user", extra_headers={"X-User-ID": "header-user"})
    with sessionlens.session(user_id="ctx-user"):
        chat(oai, user="body-user", extra_headers={"X-User-ID": "header-user"})
    chat(oai, safety_identifier="safe-1")
    users = [s.attributes[c.USER_ID] for s in sorted(tel.llm_spans(), key=lambda s: s.start_time)]
    assert users == ["body-user", "header-user", "ctx-user", "safe-1"]


# --- session() / run() ----------------------------------------------------------------------


def test_session_and_run_reach_every_span_inside(tel: Telemetry, oai: openai.OpenAI) -> None:
    with sessionlens.session(id="s1", name="support", path="ticket"), sessionlens.run(agent_id="a1", agent_name="Triage"):
        with tel.tracer.start_as_current_span("tool call"):
            chat(oai)
    spans = {s.name: s.attributes for s in tel.spans()}
    for attrs in (spans["tool call"], spans["chat gpt-4o"]):
        assert (attrs[c.SESSION_ID], attrs[c.SESSION_NAME], attrs[c.SESSION_PATH]) == ("s1", "support", "ticket")
        assert (attrs[c.AGENT_ID], attrs[c.AGENT_NAME]) == ("a1", "Triage") and len(attrs[c.RUN_ID]) == 32


def test_spans_of_other_instrumentations_get_the_session(tel: Telemetry, oai: openai.OpenAI) -> None:
    HTTPX2ClientInstrumentor().instrument(tracer_provider=tel.provider)
    try:
        with sessionlens.session(id="s-http"):
            chat(oai)
    finally:
        HTTPX2ClientInstrumentor().uninstrument()
    llm = tel.llm_spans()[0]
    http = next(s for s in tel.spans() if s.name == "POST")
    assert http.attributes[c.SESSION_ID] == "s-http"
    assert http.parent is not None and http.parent.span_id == llm.context.span_id  # GenAI span is the parent


def test_nesting_inherits_and_restores() -> None:
    with sessionlens.session(id="outer", path="a"):
        with sessionlens.session(path="b") as inner:
            assert inner.attributes[c.SESSION_ID] == "outer" and inner.attributes[c.SESSION_PATH] == "a/b"
            with sessionlens.session(path="/root"):
                assert current_attributes()[c.SESSION_PATH] == "/root"
        with sessionlens.run("r1", agent_id="x"), sessionlens.run("r2"):
            assert current_attributes()[c.RUN_ID] == "r2" and current_attributes()[c.AGENT_ID] == "x"
        assert current_attributes() == {c.SESSION_ID: "outer", c.SESSION_PATH: "a"}
    assert current_attributes() == {}
    with sessionlens.session() as fresh:
        assert len(fresh.attributes[c.SESSION_ID]) == 32


def test_decorators_sync_and_async_get_one_scope_per_call() -> None:
    @sessionlens.run(agent_id="worker")
    def work() -> dict[str, str]:
        return dict(current_attributes())

    @sessionlens.session(id="async-s")
    async def awork() -> dict[str, str]:
        await asyncio.sleep(0)
        return dict(current_attributes())

    first, second = work(), work()
    assert first[c.AGENT_ID] == "worker" and first[c.RUN_ID] != second[c.RUN_ID]
    assert asyncio.run(awork()) == {c.SESSION_ID: "async-s"}
    assert current_attributes() == {}


def test_asyncio_tasks_inherit_and_stay_separate(tel: Telemetry, server: FakeLLMServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)

    async def one(session_id: str) -> None:
        async with sessionlens.session(id=session_id):
            await asyncio.sleep(0.01)
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    async def main() -> None:
        with sessionlens.run("parent-run"):
            await asyncio.gather(*(one(f"s{i}") for i in range(4)))

    asyncio.run(main())
    spans = tel.llm_spans()
    assert sorted(s.attributes[c.SESSION_ID] for s in spans) == ["s0", "s1", "s2", "s3"]
    assert {s.attributes[c.RUN_ID] for s in spans} == {"parent-run"}


def test_threads_each_keep_their_own_session(tel: Telemetry, oai: openai.OpenAI) -> None:
    barrier = threading.Barrier(3)

    def worker(session_id: str) -> None:
        with sessionlens.session(id=session_id):
            barrier.wait()  # all three sessions are open at once
            chat(oai)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(3)]
    with sessionlens.session(id="main-thread"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(s.attributes[c.SESSION_ID] for s in tel.llm_spans()) == ["t0", "t1", "t2"]


@pytest.mark.parametrize(("factory", "kwargs"), [(sessionlens.session, {"id": ""}), (sessionlens.run, {"agent_id": 3})])
def test_bad_scope_arguments_are_refused(factory, kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="must be a non-empty string"):
        factory(**kwargs)


# --- baggage (opt-in) ----------------------------------------------------------------------


def test_baggage_is_sent_only_when_asked(tel: Telemetry, oai: openai.OpenAI, server: FakeLLMServer) -> None:
    HTTPX2ClientInstrumentor().instrument(tracer_provider=tel.provider)
    try:
        with sessionlens.session(id="private"):
            chat(oai)
        assert "baggage" not in server.requests[-1][1]
        with sessionlens.session(id="shared", propagate=True):
            chat(oai)
        assert "session.id=shared" in server.requests[-1][1]["baggage"]
    finally:
        HTTPX2ClientInstrumentor().uninstrument()


def test_processor_adopts_incoming_baggage_only_when_enabled(telemetry: Telemetry) -> None:
    parent = baggage.set_baggage(c.SESSION_ID, "from-upstream", context=otel_context.Context())
    parent = baggage.set_baggage("unrelated", "x", context=parent)
    for adopt in (True, False):
        span = telemetry.provider.get_tracer("t").start_span("server", context=parent)
        SessionSpanProcessor(adopt_baggage=adopt).on_start(span, parent)  # type: ignore[arg-type]
        assert span.attributes.get(c.SESSION_ID) == ("from-upstream" if adopt else None)
        assert "unrelated" not in span.attributes
        span.end()
    telemetry.exporter.clear()


# --- content capture -------------------------------------------------------------------------


def test_content_is_not_captured_by_default(tel: Telemetry, oai: openai.OpenAI) -> None:
    chat(oai)
    attrs = tel.llm_spans()[0].attributes
    assert c.INPUT_MESSAGES not in attrs and c.OUTPUT_MESSAGES not in attrs


@pytest.fixture
def capturing(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("SESSIONLENS_CAPTURE_MAX_BYTES", "300")
    yield from instrumented(telemetry)


def test_content_capture_records_messages(capturing: Telemetry, oai: openai.OpenAI, server: FakeLLMServer) -> None:
    chat(oai)
    list(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    import anthropic

    claude = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    claude.messages.create(model="claude-x", max_tokens=5, system="be brief", messages=MESSAGES)
    plain, streamed, anth = sorted(capturing.llm_spans(), key=lambda s: s.start_time)
    for span in (plain, streamed, anth):
        assert json.loads(span.attributes[c.INPUT_MESSAGES]) == [
            {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
        ]
        output = json.loads(span.attributes[c.OUTPUT_MESSAGES])
        assert output[0]["role"] == "assistant" and output[0]["parts"] == [{"type": "text", "content": "Hello there"}]
    assert json.loads(anth.attributes[c.SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "be brief"}]


def test_captured_content_is_capped(capturing: Telemetry, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "é" * 1000}])
    value = capturing.llm_spans()[0].attributes[c.INPUT_MESSAGES]
    assert len(value.encode()) <= 300 and value.endswith(TRUNCATION_MARK)
