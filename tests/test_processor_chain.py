"""normalize → autosession → cost on spans as other instrumentations write them."""

from __future__ import annotations

import pytest

from sessionlens import conventions as c
from sessionlens.collector.pdata import Span
from sessionlens.processors import autosession, cost, normalize

RESOURCE = {c.SERVICE_NAME: "app", c.SERVICE_INSTANCE_ID: "i-1"}


def chain(attributes: dict[str, str]) -> dict[str, str]:
    span = Span(b"\x07" * 16, b"\x01" * 8, b"", "llm", 3, 1, 2, dict(attributes), RESOURCE)
    batch = [span]
    for module in (normalize, autosession, cost):
        batch = module.create(module.Config(), None).process(batch)
    return batch[0].attributes


@pytest.mark.parametrize(
    ("attributes", "session", "source", "provider"),
    [
        (  # OpenLLMetry
            {"gen_ai.system": "OpenAI", "llm.request.type": "chat",
             "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": "1000",
             "gen_ai.usage.completion_tokens": "100",
             "traceloop.association.properties.session_id": "conv-1",
             "traceloop.association.properties.user_id": "u-1"},
            "conv-1", c.SOURCE_EXPLICIT, "openai",
        ),
        (  # OpenInference
            {"openinference.span.kind": "LLM", "llm.provider": "openai",
             "llm.model_name": "gpt-4o", "llm.token_count.prompt": "1000",
             "llm.token_count.completion": "100", "user.id": "u-2"},
            None, c.SOURCE_AUTO_USER, "openai",
        ),
        (  # the Anthropic SDK's own spans
            {"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
             "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.response.model":
             "claude-sonnet-4-5-20250929", "gen_ai.usage.input_tokens": "1000",
             "gen_ai.usage.output_tokens": "100", "gen_ai.conversation.id": "thread-9"},
            "thread-9", c.SOURCE_EXPLICIT, "anthropic",
        ),
        (  # Vercel AI SDK, doGenerate span
            {"ai.operationId": "ai.generateText.doGenerate", "ai.model.provider": "openai.chat",
             "ai.model.id": "gpt-4o", "gen_ai.usage.input_tokens": "1000",
             "gen_ai.usage.output_tokens": "100", "ai.telemetry.metadata.sessionId": "v-3"},
            "v-3", c.SOURCE_EXPLICIT, "openai",
        ),
    ],
)
def test_other_instrumentations_get_sessions_and_costs(attributes, session, source, provider):
    a = chain(attributes)
    if session is not None:
        assert a[c.SESSION_ID] == session
    assert a[c.SESSION_SOURCE] == source
    assert a[c.PROVIDER] == provider
    assert a[c.INPUT_TOKENS] == "1000" and a[c.OUTPUT_TOKENS] == "100"
    assert float(a[c.COST]) > 0


def test_a_reported_cost_under_another_name_is_kept():
    a = chain({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
               "gen_ai.usage.input_tokens": "10", "llm.cost.total": "0.5"})
    assert a[c.COST] == "0.5"
