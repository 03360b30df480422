"""The spans a fixed scenario of LLM calls exports are exactly those recorded in ``golden/``.

Performance work on the call path must not change what is exported: names, kinds, scopes,
attributes, events, status and parenting of every span, LLM and HTTP spans alike, are
compared with a capture of the same calls (ids, timestamps and the server's port
normalized), and so is the order in which a span's attributes are exported. Three set-ups: the instrumentor alone (span started on the finisher thread),
with opentelemetry-instrumentation-httpx's two instrumentors as the launcher loads them
(span started on the call path), and with content capture on. After an intended change of
the spans, write the file anew with ``SESSIONLENS_WRITE_GOLDEN=1`` and review its diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from instr_fake_llm import FakeLLMServer
from instr_support import Telemetry, instrumented
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import sessionlens
from sessionlens import conventions as c
from sessionlens.instrumentation.identity import REQUESTS

pytest_plugins = ("instr_fixtures",)
GOLDEN = Path(__file__).parent / "golden" / "instrumentation_spans.json"
WRITE_ENV = "SESSIONLENS_WRITE_GOLDEN"
MESSAGES = [{"role": "user", "content": "hi"}]
HEADERS = {
    "X-Request-ID": "req-1",
    "Helicone-Property-Tier": "gold",
    "X-Session-ID": "header-session",  # the context's session wins
    "Alephant-Run-Id": "header-run",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scenario(url: str, tracer: Any, closed_port: int) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(step, call) pairs: each kind of call the instrumentation treats differently."""
    oai = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    retrying = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=1)
    claude = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    aoai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    unreachable = openai.OpenAI(base_url=f"http://127.0.0.1:{closed_port}/v1", api_key="k", max_retries=0)
    gemini_body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 9}}

    def chat(**kwargs: Any) -> Any:
        return oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS, **kwargs)

    def in_session(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with sessionlens.session(id="s-1", name="support", path="triage", user_id="u-1"):
                with sessionlens.run(run_id="r-1", agent_id="a-1", agent_name="planner"):
                    return fn()

        return call

    def under(attributes: dict[str, str]) -> Callable[[], Any]:
        def call() -> Any:
            with tracer.start_as_current_span("outer", attributes=attributes):
                return oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS)

        return call

    def in_request() -> None:
        # A web framework's local root SERVER span records the visitor (last: the process serves from now on).
        visitor = {"client.address": "10.0.0.7", "user_agent.original": "agent/1", "enduser.id": "visitor-1"}
        with tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER, attributes=visitor):
            with tracer.start_as_current_span("handler"):
                chat()

    async def async_stream() -> str:
        stream = await aoai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        return "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])

    def gemini() -> None:
        with httpx2.Client(base_url=url) as client:
            client.post("/v1beta/models/gemini-2.5:generateContent", json=gemini_body)
            with client.stream("POST", "/v1beta/models/gemini-2.5:streamGenerateContent?alt=sse", json=gemini_body) as r:
                r.read()

    def failing(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> None:
            with pytest.raises(openai.APIError):
                fn()

        return call

    yield "chat", in_session(lambda: chat(temperature=0.5, max_tokens=20, stop=["x"], user="body-user"))
    yield "chat-plain", lambda: oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    yield "chat-stream", in_session(lambda: list(chat(stream=True, stream_options={"include_usage": True})))
    yield "chat-stream-no-usage", lambda: list(chat(stream=True))
    yield "chat-stream-gzip", lambda: list(oai.chat.completions.create(model="gzip", messages=MESSAGES, stream=True))
    yield "chat-async-stream", lambda: asyncio.run(async_stream())
    yield "responses", lambda: oai.responses.create(model="gpt-5", input="hi", instructions="be brief")
    yield "responses-stream", lambda: list(oai.responses.create(model="gpt-5", input="hi", stream=True))
    yield "embeddings", lambda: oai.embeddings.create(model="emb-3", input="hi")
    yield "completions", lambda: oai.completions.create(model="inst", prompt="hi")
    yield "anthropic", in_session(
        lambda: claude.messages.create(model="claude-x", max_tokens=10, messages=MESSAGES, system="terse")
    )
    yield "anthropic-stream", lambda: list(claude.messages.create(model="claude-x", max_tokens=10, messages=MESSAGES, stream=True))
    yield "gemini", gemini
    yield "retried-429", failing(lambda: retrying.chat.completions.create(model="fail-429", messages=MESSAGES))
    yield "http-500", failing(lambda: oai.chat.completions.create(model="fail-500", messages=MESSAGES))
    yield "unreachable", failing(lambda: unreachable.chat.completions.create(model="gpt-4o", messages=MESSAGES))
    yield "under-app-span", in_session(under({"app": "yes"}))
    yield "under-genai-span", in_session(under({c.OPERATION: "chat", "gen_ai.system": "openai"}))
    yield "in-a-request", in_request
    yield "after-a-request", lambda: oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _normalized(spans: list[ReadableSpan], ports: dict[int, str]) -> list[dict[str, Any]]:
    """The spans as JSON-able dicts, in start order; parents as indexes into the list."""
    ordered = sorted(spans, key=lambda s: (s.start_time, s.name))
    index = {s.context.span_id: i for i, s in enumerate(ordered)}

    def clean(key: str, value: Any) -> Any:
        if key == c.TIME_TO_FIRST_CHUNK:
            assert isinstance(value, float) and 0 < value < 10, value
            return "<seconds>"
        if key == "exception.stacktrace":
            # file paths and line numbers of the machine and library versions that ran it
            assert isinstance(value, str) and value.startswith("Traceback"), value
            return "<stacktrace>"
        if isinstance(value, int) and value in ports:
            return ports[value]
        if isinstance(value, str):
            for port, label in ports.items():
                value = value.replace(str(port), label)
        return _value(value)

    out = []
    for span in ordered:
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
        parent = span.parent
        out.append(
            {
                "name": span.name,
                "kind": span.kind.name,
                "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
                "parent": None if parent is None else index.get(parent.span_id, "outside"),
                "same_trace": parent is None or parent.trace_id == span.context.trace_id,
                "attributes": {k: clean(k, v) for k, v in sorted((span.attributes or {}).items())},
                "attribute_order": list(span.attributes or {}),  # the order they are exported in
                "events": [
                    {"name": e.name, "attributes": {k: clean(k, v) for k, v in sorted((e.attributes or {}).items())}}
                    for e in span.events
                ],
                "status": [span.status.status_code.name, span.status.description],
            }
        )
    return out


def _capture(telemetry: Telemetry, server: FakeLLMServer) -> dict[str, list[dict[str, Any]]]:
    REQUESTS.serving, REQUESTS._roots = False, {}  # each set-up starts as a process that served no one
    captured = {}
    closed = _closed_port()
    ports = {server.server_address[1]: "<port>", closed: "<closed port>"}
    for step, call in _scenario(server.url, telemetry.tracer, closed):
        telemetry.exporter.clear()
        call()
        spans = list(telemetry.spans())
        captured[step] = _normalized(spans, ports)
    telemetry.exporter.clear()
    return captured


def _setups(telemetry: Telemetry, server: FakeLLMServer) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for _ in instrumented(telemetry):
        result["instrumentor"] = _capture(telemetry, server)
    http = [HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()]
    for instrumentor in http:
        instrumentor.instrument(tracer_provider=telemetry.provider)
    try:
        for _ in instrumented(telemetry):
            result["with-httpx-instrumentation"] = _capture(telemetry, server)
    finally:
        for instrumentor in http:
            instrumentor.uninstrument()
    for _ in instrumented(telemetry, capture_content=True):
        result["content-capture"] = _capture(telemetry, server)
    return result


def test_exported_spans_match_the_golden_capture(
    telemetry: Telemetry, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(REQUESTS, "serving", False)  # restored afterwards, for the tests that follow
    monkeypatch.setattr(REQUESTS, "_roots", {})
    captured = _setups(telemetry, server)
    text = json.dumps(captured, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get(WRITE_ENV):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    expected = json.loads(GOLDEN.read_text())
    for setup, steps in expected.items():
        for step, spans in steps.items():
            assert captured[setup][step] == spans, f"{setup} / {step}"
    assert captured.keys() == expected.keys() and all(captured[s].keys() == expected[s].keys() for s in expected)
