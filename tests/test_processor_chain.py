"""normalize → autosession → cost on spans as other instrumentations write them."""

from __future__ import annotations

import pytest

from sessionlens import conventions as c
from sessionlens.collector.component import Settings
from sessionlens.collector.pdata import Batch, Span
from sessionlens.processors import autosession, cost, normalize

RESOURCE = {c.SERVICE_NAME: "app", c.SERVICE_INSTANCE_ID: "i-1"}


class _Sink:
    """The next consumer of the chain's last processor: keeps what reached it."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def consume(self, batch: Batch) -> None:
        self.batches.append(batch)


def chain(attributes: dict[str, str]) -> dict[str, str]:
    """The span's attributes after the three processors, each created by its factory with
    the next one, as the pipeline wires them."""
    sink = _Sink()
    consumer = sink
    for module in (cost, autosession, normalize):
        consumer = module.create(module.Config(), Settings(module.TYPE, None), consumer)
    consumer.consume(Batch([Span(b"\x07" * 16, b"\x01" * 8, b"", "llm", 3, 1, 2, dict(attributes), RESOURCE)]))
    ((span,),) = [batch.spans for batch in sink.batches]
    return span.attributes


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


# --- one bad number costs nothing else (issue 8) -----------------------------------------

import json  # noqa: E402
import math  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sessionlens.collector import clickhouse_exporter  # noqa: E402

_NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**401), max_value=10**401).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1.7e308", "-1000000", "9" * 401, str(2**63),
                     str(2**63 - 1), "0123", "1e3", "", " 5", "12:30", "yes"]),
    st.text(max_size=8),
)
_LANGFUSE = st.fixed_dictionaries({
    "input": st.floats(min_value=0, allow_infinity=True, allow_nan=False),
    "input_cached_tokens": st.floats(min_value=0, allow_infinity=False, allow_nan=False),
    "output": st.integers(min_value=0, max_value=10**400),
}).map(json.dumps)
_NUMERIC_KEYS = (*c.TOKEN_COUNTS, c.COST, "gen_ai.usage.prompt_tokens", "llm.token_count.completion",
                 "llm.cost.total")
_NORMALIZE = normalize.NormalizeProcessor(normalize.Config())
_COST = cost.CostProcessor(cost.Config())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.dictionaries(st.sampled_from(_NUMERIC_KEYS), _NUMBER_TEXT), st.none() | _LANGFUSE),
             min_size=1, max_size=6),
)
def test_any_token_or_cost_value_leaves_every_span_priceable_and_storable(values):
    spans = []
    for i, (attributes, langfuse) in enumerate(values):
        attributes = {c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", **attributes}
        if langfuse is not None:
            attributes[c.LANGFUSE_USAGE_DETAILS] = langfuse
        spans.append(Span(b"\x07" * 16, (i + 1).to_bytes(8, "big"), b"", "llm", 3, 1, 2, attributes, RESOURCE))
    # none of them may raise; normalize and cost are made once (cost's price book costs
    # about 0.3 s to build), autosession anew, so no example inherits another's sessions
    batch = autosession.AutoSessionProcessor(autosession.Config()).process(_NORMALIZE.process(spans))
    batch = _COST.process(batch)
    assert len(batch) == len(spans)
    for span in batch:
        a = span.attributes
        for key in _NUMERIC_KEYS:  # whatever is left, canonical or alias, is a usable number
            if key in (c.COST, "llm.cost.total"):
                if key in a:
                    assert math.isfinite(float(a[key])) and 0 <= float(a[key]), (key, a[key])
            elif key in a:
                assert a[key].isdigit() and int(a[key]) <= c.MAX_TOKEN_COUNT, (key, a[key])
        assert set(json.loads(a.get(c.INVALID_NUMBERS, "{}"))) <= set(_NUMERIC_KEYS)
    clickhouse_exporter.to_columns(batch)


@pytest.mark.parametrize(
    ("attributes", "kept", "invalid"),
    [
        ({c.INPUT_TOKENS: "9" * 401, c.OUTPUT_TOKENS: "7"}, {c.OUTPUT_TOKENS: "7"}, {c.INPUT_TOKENS: "out of range"}),
        ({c.INPUT_TOKENS: str(2**63), c.OUTPUT_TOKENS: str(2**63 - 1)}, {c.OUTPUT_TOKENS: str(2**63 - 1)},
         {c.INPUT_TOKENS: "out of range"}),
        ({c.COST: "nan", c.INPUT_TOKENS: "-3"}, {}, {c.COST: "NaN", c.INPUT_TOKENS: "negative"}),
        ({c.COST: "-1000000"}, {}, {c.COST: "negative"}),
        ({c.COST: "inf", c.OUTPUT_TOKENS: "1.5"}, {}, {c.COST: "out of range", c.OUTPUT_TOKENS: "not a decimal integer"}),
        ({"gen_ai.usage.prompt_tokens": "1e400", c.OUTPUT_TOKENS: "0123"}, {c.OUTPUT_TOKENS: "0123"},
         {"gen_ai.usage.prompt_tokens": "out of range"}),
        ({c.LANGFUSE_USAGE_DETAILS: json.dumps({"input": 1.7e308, "output": 10})}, {c.OUTPUT_TOKENS: "10"},
         {c.INPUT_TOKENS: "out of range"}),
        ({c.LANGFUSE_USAGE_DETAILS: json.dumps({"input": 1e308, "input_cached_tokens": 1e308})}, {},
         {c.INPUT_TOKENS: "out of range", c.CACHE_READ_INPUT_TOKENS: "out of range"}),
        ({c.LANGFUSE_COST_DETAILS: json.dumps({"total": 1.7e308})}, {}, {c.COST: "out of range"}),
    ],
)
def test_out_of_range_numbers_are_dropped_with_a_counted_reason(attributes, kept, invalid):
    span = Span(b"\x07" * 16, b"\x01" * 8, b"", "llm", 3, 1, 2, dict(attributes), RESOURCE)
    (out,) = normalize.NormalizeProcessor(normalize.Config()).process([span])
    a = out.attributes
    numeric = {k: v for k, v in a.items() if k in (*c.TOKEN_COUNTS, c.COST, "gen_ai.usage.prompt_tokens")}
    assert numeric == kept
    assert json.loads(a[c.INVALID_NUMBERS]) == invalid


def test_valid_numbers_are_left_alone():
    attributes = {c.INPUT_TOKENS: "1000", c.OUTPUT_TOKENS: "0", c.COST: "0.000123", "llm.cost.total": "1e-5"}
    span = Span(b"\x07" * 16, b"\x01" * 8, b"", "llm", 3, 1, 2, dict(attributes), RESOURCE)
    (out,) = normalize.NormalizeProcessor(normalize.Config()).process([span])
    assert out.attributes == attributes
