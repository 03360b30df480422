"""LLM calls through the real openai/anthropic SDKs (and raw httpx/httpx2) against the fake server."""

from __future__ import annotations

import asyncio
import gc

import anthropic
import httpx
import httpx2
import openai
import pytest
from instr_fake_llm import USAGE_GEMINI, FakeLLMServer
from instr_support import Telemetry
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from sessionlens import conventions as c
from sessionlens.instrumentation import responses
from sessionlens.instrumentation.instrumentor import SessionLensInstrumentor

pytest_plugins = ("instr_fixtures",)
MESSAGES = [{"role": "user", "content": "hi"}]




@pytest.fixture
def aoai(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)


@pytest.fixture
def claude(server: FakeLLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)


def only_llm_span(tel: Telemetry) -> ReadableSpan:
    spans = tel.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_openai_chat_span_has_genai_attributes(tel: Telemetry, oai: openai.OpenAI, server: FakeLLMServer) -> None:
    reply = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.5, max_tokens=20, stop=["x"])
    assert reply.choices[0].message.content == "Hello there"
    span = only_llm_span(tel)
    attrs = span.attributes
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs[c.PROVIDER] == "openai" and attrs[c.OPERATION] == "chat"
    assert attrs[c.REQUEST_MODEL] == "gpt-4o" and attrs[c.RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[c.REQUEST_TEMPERATURE] == 0.5 and attrs[c.REQUEST_MAX_TOKENS] == 20
    assert attrs[c.REQUEST_STOP_SEQUENCES] == ("x",)
    assert attrs[c.RESPONSE_ID] == "chatcmpl-1" and attrs[c.FINISH_REASONS] == ("stop",)
    assert (attrs[c.INPUT_TOKENS], attrs[c.OUTPUT_TOKENS]) == (11, 7)
    assert (attrs[c.CACHE_READ_INPUT_TOKENS], attrs[c.REASONING_OUTPUT_TOKENS]) == (3, 2)
    assert attrs[c.SERVER_ADDRESS] == "127.0.0.1" and attrs[c.SERVER_PORT] == server.server_address[1]
    assert c.TIME_TO_FIRST_CHUNK not in attrs  # not a stream


def test_async_openai_stream_span_covers_the_stream(tel: Telemetry, aoai: openai.AsyncOpenAI) -> None:
    async def call() -> list[str]:
        stream = await aoai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert tel.llm_spans() == []  # still open: the body has not been read
        return [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]

    assert "".join(asyncio.run(call())) == "Hello there"
    attrs = only_llm_span(tel).attributes
    assert (attrs[c.INPUT_TOKENS], attrs[c.OUTPUT_TOKENS], attrs[c.CACHE_READ_INPUT_TOKENS]) == (11, 7, 3)
    assert attrs[c.FINISH_REASONS] == ("stop",) and attrs[c.RESPONSE_ID] == "chatcmpl-1"
    assert 0 < attrs[c.TIME_TO_FIRST_CHUNK] < 5


@pytest.mark.parametrize(
    ("call", "name", "operation", "tokens"),
    [
        (lambda o: o.embeddings.create(model="emb-3", input="hi"), "embeddings emb-3", "embeddings", (5, None)),
        (lambda o: o.completions.create(model="inst", prompt="hi"), "text_completion inst", "text_completion", (11, 7)),
        (lambda o: o.responses.create(model="gpt-5", input="hi"), "chat gpt-5", "chat", (9, 5)),
        (lambda o: list(o.responses.create(model="gpt-5", input="hi", stream=True)), "chat gpt-5", "chat", (9, 5)),
    ],
    ids=["embeddings", "completions", "responses", "responses-stream"],
)
def test_other_openai_operations(tel: Telemetry, oai: openai.OpenAI, call, name, operation, tokens) -> None:  # type: ignore[no-untyped-def]
    call(oai)
    span = only_llm_span(tel)
    assert span.name == name and span.attributes[c.OPERATION] == operation
    assert (span.attributes.get(c.INPUT_TOKENS), span.attributes.get(c.OUTPUT_TOKENS)) == tokens


def test_responses_stream_records_status_and_reasoning(tel: Telemetry, oai: openai.OpenAI) -> None:
    list(oai.responses.create(model="gpt-5", input="hi", stream=True))
    attrs = only_llm_span(tel).attributes
    assert attrs[c.RESPONSE_ID] == "resp_1" and attrs[c.FINISH_REASONS] == ("completed",)
    assert attrs[c.REASONING_OUTPUT_TOKENS] == 1 and c.TIME_TO_FIRST_CHUNK in attrs


def test_anthropic_input_tokens_include_cache(tel: Telemetry, claude: anthropic.Anthropic) -> None:
    claude.messages.create(model="claude-x", max_tokens=10, messages=MESSAGES, extra_body={"top_k": 3})
    attrs = only_llm_span(tel).attributes
    assert attrs[c.PROVIDER] == "anthropic" and attrs[c.REQUEST_TOP_K] == 3
    assert attrs[c.INPUT_TOKENS] == 10 + 4 + 2
    assert (attrs[c.CACHE_READ_INPUT_TOKENS], attrs[c.CACHE_CREATION_INPUT_TOKENS]) == (4, 2)
    assert attrs[c.OUTPUT_TOKENS] == 6 and attrs[c.FINISH_REASONS] == ("end_turn",)


def test_async_anthropic_stream(tel: Telemetry, server: FakeLLMServer) -> None:
    async def call() -> str:
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0)
        async with client.messages.stream(model="claude-x", max_tokens=10, messages=MESSAGES) as stream:
            return await stream.get_final_text()

    assert asyncio.run(call()) == "Hello there"
    attrs = only_llm_span(tel).attributes
    assert (attrs[c.INPUT_TOKENS], attrs[c.OUTPUT_TOKENS]) == (16, 6)
    assert attrs[c.RESPONSE_ID] == "msg_1" and attrs[c.TIME_TO_FIRST_CHUNK] > 0


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_gemini_over_plain_http_clients(tel: Telemetry, server: FakeLLMServer, module) -> None:  # type: ignore[no-untyped-def]
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 9}}
    with module.Client(base_url=server.url) as client:
        client.post("/v1beta/models/gemini-2.5:generateContent", json=body)
        with client.stream("POST", "/v1beta/models/gemini-2.5:streamGenerateContent?alt=sse", json=body) as r:
            assert b"".join(r.iter_bytes()).count(b"data:") == 3
    plain, streamed = tel.llm_spans()
    for span in (plain, streamed):
        assert span.name == "generate_content gemini-2.5" and span.attributes[c.PROVIDER] == "gcp.gemini"
        assert span.attributes[c.REQUEST_MAX_TOKENS] == 9 and span.attributes[c.RESPONSE_MODEL] == "gemini-2.5-001"
        assert span.attributes[c.INPUT_TOKENS] == USAGE_GEMINI["promptTokenCount"]
        assert span.attributes[c.OUTPUT_TOKENS] == 4 + 3  # thinking counts as output
        assert span.attributes[c.FINISH_REASONS] == ("STOP",)
    assert c.TIME_TO_FIRST_CHUNK in streamed.attributes


def test_other_http_traffic_is_left_alone(tel: Telemetry, server: FakeLLMServer) -> None:
    with httpx2.Client(base_url=server.url) as client:
        assert client.post("/v1/models/list", json={}).status_code == 404
    assert tel.spans() == ()


def test_abandoned_stream_ends_its_span(tel: Telemetry, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    assert tel.llm_spans() == []
    del stream
    gc.collect()
    span = only_llm_span(tel)
    assert span.attributes[c.RESPONSE_ID] == "chatcmpl-1" and c.INPUT_TOKENS not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_closed_stream_ends_its_span(tel: Telemetry, oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    assert only_llm_span(tel).end_time is not None


def test_http_429_retries_are_each_a_span_with_resend_count(tel: Telemetry, server: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fail-429", messages=MESSAGES)
    spans = sorted(tel.llm_spans(), key=lambda s: s.start_time)
    assert len(spans) == 3
    for span in spans:
        assert span.attributes[c.ERROR_TYPE] == "429" and span.status.status_code is StatusCode.ERROR
    assert [s.attributes.get(c.HTTP_RESEND_COUNT) for s in spans] == [None, 1, 2]


def test_http_500_sets_error(tel: Telemetry, claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.create(model="fail-500", max_tokens=10, messages=MESSAGES)
    span = only_llm_span(tel)
    assert span.attributes[c.ERROR_TYPE] == "500" and span.status.description == "HTTP 500"


def test_timeout_before_response_sets_error(tel: Telemetry, server: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="stall", messages=MESSAGES)
    span = only_llm_span(tel)
    assert span.attributes[c.ERROR_TYPE] == "ReadTimeout" and span.status.status_code is StatusCode.ERROR


def test_timeout_inside_a_stream_sets_error(tel: Telemetry, server: FakeLLMServer) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0, timeout=0.3)
    stream = client.chat.completions.create(model="stall-stream", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APITimeoutError):
        list(stream)
    span = only_llm_span(tel)
    assert span.attributes[c.ERROR_TYPE] == "ReadTimeout" and c.TIME_TO_FIRST_CHUNK in span.attributes


def test_failing_telemetry_never_breaks_the_call(
    tel: Telemetry, oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: object, obj: object) -> None:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(responses.ResponseReader, "update", boom)
    assert oai.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hello there"
    chunks = list(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Hello there"
    assert len(tel.llm_spans()) == 2  # both still ended


def test_anthropic_sdk_tracing_is_enriched_not_duplicated(tel: Telemetry, server: FakeLLMServer) -> None:
    import sessionlens

    client = anthropic.Anthropic(
        base_url=server.url, api_key="k", max_retries=0, open_telemetry={"tracer_provider": tel.provider}
    )
    with sessionlens.session(id="s-dup"):
        client.messages.create(
            model="claude-x", max_tokens=10, messages=MESSAGES, extra_headers={"X-Request-ID": "req-9"}
        )
    assert tel.llm_spans() == []
    inference = [s for s in tel.spans() if s.attributes.get(c.OPERATION) == "chat"]
    assert len(inference) == 1 and inference[0].instrumentation_scope.name == "com.anthropic.sdk.python"
    assert inference[0].attributes[c.SESSION_ID] == "s-dup" and inference[0].attributes[c.REQUEST_ID] == "req-9"


def test_instrument_client_traces_only_that_client(telemetry: Telemetry, server: FakeLLMServer) -> None:
    traced = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    other = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    SessionLensInstrumentor.instrument_client(traced, tracer_provider=telemetry.provider)
    try:
        traced.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        other.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(telemetry.llm_spans()) == 1
    finally:
        SessionLensInstrumentor.uninstrument_client(traced)
        telemetry.exporter.clear()
    traced.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert telemetry.llm_spans() == []


def test_instrument_client_rejects_what_it_cannot_trace() -> None:
    with pytest.raises(TypeError, match="httpx/httpx2 client"):
        SessionLensInstrumentor.instrument_client(object())


@pytest.mark.parametrize(
    ("attributes", "duplicate"),
    [
        ({c.OPERATION: "chat", "gen_ai.system": "openai"}, True),  # opentelemetry-instrumentation-openai-v2
        ({c.LLM_REQUEST_TYPE: "chat", "gen_ai.system": "OpenAI"}, True),  # OpenLLMetry
        ({c.OPERATION: "invoke_agent", c.AGENT_NAME: "planner"}, False),  # an agent span wraps LLM calls
    ],
    ids=["openai-v2", "openllmetry", "agent"],
)
def test_other_genai_spans_are_enriched_not_duplicated(
    tel: Telemetry, oai: openai.OpenAI, attributes: dict[str, str], duplicate: bool
) -> None:
    with tel.tracer.start_as_current_span("outer", attributes=attributes):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Session-ID": "s-outer"})
    outer = next(s for s in tel.spans() if s.name == "outer")
    assert len(tel.llm_spans()) == (0 if duplicate else 1)
    for llm in tel.llm_spans():  # started on the finisher thread, still under the app's span
        assert llm.parent is not None and llm.parent.span_id == outer.context.span_id
    assert (outer.attributes.get(c.SESSION_ID) == "s-outer") is duplicate


def test_a_per_client_instrumented_transport_gets_the_llm_span_as_parent(tel: Telemetry, server: FakeLLMServer) -> None:
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    with httpx2.Client(base_url=server.url) as client:
        HTTPX2ClientInstrumentor.instrument_client(client, tracer_provider=tel.provider)
        client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    http = next(s for s in tel.spans() if s.name == "POST")
    assert http.parent is not None and http.parent.span_id == only_llm_span(tel).context.span_id


def test_gzip_compressed_stream_is_read(tel: Telemetry, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="gzip", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == "Hello there"
    assert only_llm_span(tel).attributes[c.INPUT_TOKENS] == 11
