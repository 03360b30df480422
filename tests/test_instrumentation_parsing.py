"""Recognising LLM endpoints and reading bodies: the pure parts, with bad input."""

from __future__ import annotations

import json
from typing import Any

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


def _read_header_by_header(headers: list[tuple[None, bytes, bytes]], body: dict, scope: dict) -> dict:
    """The reading the header plan stands for: every header, in order, one at a time."""
    rank = {h.encode(): (key, r) for key, names in c.HEADER_ATTRIBUTES.items() for r, h in enumerate(names)}
    found: dict = {}
    attrs: dict = {}
    user = body_user(body)
    if user is not None:
        attrs[c.USER_ID] = user
    for _, name, value in headers:
        if name in rank:
            key, r = rank[name]
            if key not in found or r < found[key][0]:
                found[key] = (r, value)
        elif name.startswith(tuple(p.encode() for p in c.PROPERTY_HEADER_PREFIXES)):
            prop = c.property_attribute(name.decode("latin-1"))
            if prop is not None:
                attrs[prop] = value.decode("utf-8", "replace")
        elif name == b"x-stainless-retry-count" and value.isdigit() and value != b"0":
            attrs[c.HTTP_RESEND_COUNT] = int(value)
    for key, (_, value) in found.items():
        attrs[key] = value.decode("utf-8", "replace")
    attrs.update(scope)
    return attrs


_HEADER_NAMES = st.sampled_from(
    [h.encode() for names in c.HEADER_ATTRIBUTES.values() for h in names]
    + [b"helicone-property-tier", b"x-sessionlens-property-team", b"helicone-property-", b"x-stainless-retry-count"]
    + [b"content-type", b"authorization", b"x-stainless-lang", b"x-request-idx"]
)
_HEADER_VALUES = st.sampled_from([b"0", b"1", b"12", b"-1", b"v", b"", b"\xff\xfe", "é".encode()])


@given(st.lists(st.tuples(st.none(), _HEADER_NAMES, _HEADER_VALUES), max_size=12), st.booleans())
def test_the_header_plan_reads_what_each_header_says(headers: list, with_scope: bool) -> None:
    from sessionlens.instrumentation.call import identity_attributes

    body = {"user": "body-user"}
    scope = {c.SESSION_ID: "ctx"} if with_scope else {}
    for _ in range(2):  # planned on the first call, read from the plan on the second
        got = identity_attributes(headers, body, scope)
        expected = _read_header_by_header(headers, body, scope)
        assert list(got.items()) == list(expected.items())  # values and order


_SSE_DATA = st.sampled_from(
    [
        b'data: {"id": "a", "choices": []}',
        b'data: {"choices": [{"finish_reason": "stop"}]}',
        b'data: {"usage": {"prompt_tokens": 1}}',
        b'data:{"usage":\t{"x": 1}}',
        b'data: {"usage": null}',
        b"data: [DONE]",
        b"data:",
        b'data: {"type": "message_delta"}',
        b'data: "usage":',
        b"data: {",
        b'data: "type":',
        b'data: "message_start"}',
        b'data: "finish_reason": "x"',
        b'data: {"finish_reason":',
    ]
)
_SSE_OTHER = st.sampled_from([b"event: message_start", b': {"usage": {"comment": 1}}', b'id: "usage": {', b"{"])
# Mostly one data line an event, as providers send them; now and then none, or two (whose
# joined data may match where neither line does).
_SSE_EVENT = st.tuples(st.lists(_SSE_OTHER, max_size=1), st.lists(_SSE_DATA, min_size=1, max_size=1), st.lists(_SSE_OTHER, max_size=1)).map(
    lambda parts: parts[0] + parts[1] + parts[2]
) | st.lists(st.one_of(_SSE_DATA, _SSE_OTHER), max_size=2)


@given(
    st.lists(_SSE_EVENT, max_size=8),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=2, max_value=3),
)
def test_selected_events_are_those_a_reading_of_every_event_picks(
    events: list[list[bytes]], newline: bytes, trailing: int, gap: int
) -> None:
    from sessionlens.instrumentation.responses import _INTERESTING
    from sessionlens.instrumentation.sse import selected_payloads

    body = (newline * gap).join(newline.join(lines) for lines in events) + newline * trailing
    for wanted in (_INTERESTING["openai"], _INTERESTING["anthropic"], _INTERESTING["gemini"]):
        every = [payload for payload in event_payloads(body) if payload != b"[DONE]"]
        last = len(every) - 1
        expected = [p for i, p in enumerate(every) if i in (0, last) or wanted.search(p)]
        assert selected_payloads(body, wanted) == expected


def test_a_long_stream_is_read_by_scanning_as_by_splitting(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionlens.instrumentation import call

    def chunk(choices: list, **extra: object) -> bytes:
        event = {"id": "chatcmpl-9", "model": "gpt-4o-2024-08-06", "choices": choices, "usage": None, **extra}
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    body = (
        chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        + b"".join(chunk([{"index": 0, "delta": {"content": " w"}, "finish_reason": None}]) for _ in range(300))
        + chunk([{"index": 0, "delta": {}, "finish_reason": "length"}])
        + chunk([], usage={"prompt_tokens": 10, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 4}})
        + b"data: [DONE]\n\n"
    )
    assert len(body) > call.SCAN_FROM_BYTES
    endpoint = recognise("api.openai.com", "/v1/chat/completions")
    assert endpoint is not None
    results = []
    for scan_from in (call.SCAN_FROM_BYTES, len(body) + 1):
        monkeypatch.setattr(call, "SCAN_FROM_BYTES", scan_from)
        reader = ResponseReader(endpoint, capture=False)
        call._read_events(reader, body)
        results.append(reader.result())
    assert results[0] == results[1]
    assert results[0][c.FINISH_REASONS] == ["length"] and results[0][c.INPUT_TOKENS] == 10
    assert results[0][c.OUTPUT_TOKENS] == 300 and results[0][c.CACHE_READ_INPUT_TOKENS] == 4


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, "é", null, true]}', "[1]", '{"a": x}', "[1,", "{not", "[", '{"a":1} ', "[1]x", ' {"a": 1}', "{}", "7", ""],
)
def test_json_is_parsed_exactly_as_json_loads_parses_it(text: str) -> None:
    from sessionlens.instrumentation.call import _parse, _parse_bytes

    def outcome(parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as error:  # the same kind of error (JSONDecodeError), never another
            return type(error)

    assert outcome(_parse, text) == outcome(json.loads, text)
    for data in (text.encode(), text.encode("utf-16-le"), b"\xef\xbb\xbf" + text.encode()):
        assert outcome(_parse_bytes, data) == outcome(json.loads, data)
