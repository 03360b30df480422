"""Fixtures of the instrumentation tests: the fake LLM server, an instrumented in-memory
tracer provider and an OpenAI client pointed at the server. Test modules load them with
``pytest_plugins = ("instr_fixtures",)``."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from instr_fake_llm import FakeLLMServer
from instr_support import Telemetry, instrumented


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def tel(telemetry: Telemetry) -> Iterator[Telemetry]:
    yield from instrumented(telemetry)


@pytest.fixture
def oai(server: FakeLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
