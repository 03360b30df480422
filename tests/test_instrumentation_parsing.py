"""Recognising LLM endpoints and reading bodies: the pure parts, with bad input."""

from __future__ import annotations

import json

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from instr_support import Telemetry

from sessionlens import conventions as c
from sessionlens.instrumentation.call import CallTracer
from sessionlens.instrumentation.content import DEFAULT_MAX_BYTES, max_bytes
from sessionlens.instrumentation.finisher import FINISHER
from sessionlens.instrumentation.providers import body_user, recognise, request_attributes
from sessionlens.instrumentation.responses import ResponseReader
from sessionlens.instrumentation.sse import event_payloads
from sessionlens.instrumentation.streams import stream_wrappers


@pytest.mark.parametrize(
    ("host", "path", "provider", "operation"),
    [
        ("api.openai.com", "/v1/chat/completions", "openai", "chat"),
        ("x.openai.azure.com", "/openai/deployments/d/chat/completions", "azure.ai.openai", "chat"),
        ("api.groq.com", "/openai/v1/chat/completions", "groq", "chat"),
        ("api.mistral.ai", "/v1/embeddings", "mistral_ai", "embeddings"),
        ("api.deepseek.com", "/chat/completions", "deepseek", "chat"),
        ("openrouter.ai", "/api/v1/completions", "openrouter", "text_completion"),
        ("localhost", "/v1/chat/completions", "openai", "chat"),  # vLLM, Ollama, LiteLLM…
        ("api.openai.com", "/v1/responses", "openai", "chat"),
        ("api.anthropic.com", "/v1/messages", "anthropic", "chat"),
        ("generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5:generateContent", "gcp.gemini", "generate_content"),
        ("us-aiplatform.googleapis.com", "/v1/p/models/g:streamGenerateContent", "gcp.vertex_ai", "generate_content"),
    ],
)
def test_llm_endpoints_are_recognised(host: str, path: str, provider: str, operation: str) -> None:
    endpoint = recognise(host, path)
    assert endpoint is not None and (endpoint.provider, endpoint.operation) == (provider, operation)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/threads/t1/messages", "/v1/messages/count_tokens", "/v1/files", "/"]
)
def test_other_paths_are_not_llm_calls(path: str) -> None:
    assert recognise("api.openai.com", path) is None


def test_request_parameters_of_the_wrong_type_are_dropped() -> None:
    endpoint = recognise("api.openai.com", "/v1/chat/completions")
    assert endpoint is not None
    body = {"model": 5, "temperature": "hot", "n": True, "stop": [1, 2], "top_p": 0.9, "seed": 7}
    assert request_attributes(endpoint, body) == {c.REQUEST_TOP_P: 0.9, c.REQUEST_SEED: 7}
    assert body_user({"user": 3, "metadata": {"user_id": "anthropic-user"}}) == "anthropic-user"
    assert body_user({"user": ""}) is None


def test_response_reader_ignores_malformed_objects() -> None:
    for family_host, path in (("api.openai.com", "/v1/chat/completions"), ("api.anthropic.com", "/v1/messages")):
        endpoint = recognise(family_host, path)
        assert endpoint is not None
        reader = ResponseReader(endpoint, capture=True)
        for obj in (None, 3, "x", [], {"choices": "no"}, {"usage": {"prompt_tokens": "many"}}, {"type": "message_delta"}):
            reader.update(obj)
        assert reader.result() == {}


def test_sse_payloads_with_crlf_multiline_comments_and_a_cut_last_event() -> None:
    body = b": comment\r\nevent: a\r\ndata: {\"x\":\r\ndata: 1}\r\n\r\ndata:2\n\ndata: [DONE]"
    assert event_payloads(body) == [b'{"x":\n1}', b"2", b"[DONE]"]


@given(st.lists(st.dictionaries(st.text(min_size=1), st.integers()), max_size=5), st.sampled_from(["\n", "\r\n", "\r"]))
def test_sse_payloads_round_trip(objects: list[dict[str, int]], newline: str) -> None:
    body = "".join(f"data: {json.dumps(o)}{newline}{newline}" for o in objects).encode()
    assert [json.loads(p) for p in event_payloads(body)] == objects


def test_unparseable_bodies_still_end_the_span() -> None:
    telemetry = Telemetry()
    calls = CallTracer(telemetry.provider.get_tracer("sessionlens.instrumentation"), capture=True, capture_limit=100)
    url = "https://api.openai.com/v1/chat/completions"
    request = httpx2.Request("POST", url, content=b"{not json", headers={"X-Session-ID": "s-bad"})
    call = calls.begin(request, parentable=False)
    assert call is not None
    call.sent()
    call.responded(httpx2.Response(200, content=b"{garbage", request=request), stream_wrappers(httpx2)[0])
    FINISHER.flush()
    (span,) = telemetry.exporter.get_finished_spans()
    assert span.name == "chat" and span.attributes[c.PROVIDER] == "openai" and c.INPUT_TOKENS not in span.attributes
    assert span.attributes[c.SESSION_ID] == "s-bad"  # a bad body costs only what the body would have said


def test_capture_size_setting_falls_back_on_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in (("1000", 1000), ("-5", DEFAULT_MAX_BYTES), ("lots", DEFAULT_MAX_BYTES), ("0", DEFAULT_MAX_BYTES)):
        monkeypatch.setenv("SESSIONLENS_CAPTURE_MAX_BYTES", raw)
        assert max_bytes() == expected


def test_finisher_runs_jobs_in_order_and_survives_failing_ones() -> None:
    from sessionlens.instrumentation.finisher import Finisher

    finisher, done = Finisher(), []

    def fail() -> None:
        raise RuntimeError("a broken job")

    for job in (lambda: done.append(1), fail, lambda: done.append(2)):
        finisher.submit(job)
    finisher.flush()
    assert done == [1, 2]
