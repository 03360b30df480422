"""The cost processor: prices LLM spans without a cost, with the schema's prices and formula."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlens import conventions as c
from sessionlens.collector.storage import connect
from sessionlens.processors import cost
from sessionlens.schema.migrate import SchemaOptions, apply
from sessionlens.schema.prices import cost_usd, load_prices
from span_factory import make_span


def priced(attributes: dict[str, str], config: cost.Config | None = None) -> dict[str, str]:
    processor = cost.create(config or cost.Config(), None)
    return processor.process([make_span(attributes)])[0].attributes


def test_llm_span_gets_the_schema_formula_cost_as_a_decimal_string():
    a = priced(
        {
            c.OPERATION: "chat",
            c.REQUEST_MODEL: "gpt-4o",
            c.INPUT_TOKENS: "1000",
            c.OUTPUT_TOKENS: "200",
            c.CACHE_READ_INPUT_TOKENS: "400",
        }
    )
    expected = cost_usd(load_prices(), "gpt-4o", 1000, 200, 400)
    assert expected and float(a[c.COST]) == pytest.approx(expected, abs=1e-12)
    assert "e" not in a[c.COST]


def test_response_model_wins_and_dated_or_prefixed_names_resolve():
    a = priced(
        {
            c.OPERATION: "chat",
            c.REQUEST_MODEL: "gpt-4o",
            c.RESPONSE_MODEL: "openai/gpt-4o-mini-2024-07-18",
            c.INPUT_TOKENS: "1000000",
            c.OUTPUT_TOKENS: "0",
        }
    )
    assert float(a[c.COST]) == pytest.approx(load_prices()["gpt-4o-mini"].input_per_mtok)


def test_a_cost_the_span_carries_wins():
    a = priced({c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "9", c.COST: "1.5"})
    assert a[c.COST] == "1.5"


def test_tokens_without_operation_count_as_llm_span_but_agent_spans_do_not():
    assert c.COST in priced({c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "10"})
    assert c.COST not in priced(
        {c.OPERATION: "invoke_agent", c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "10"}
    )
    assert c.COST not in priced({c.REQUEST_MODEL: "gpt-4o"})  # no operation, no tokens


@pytest.mark.parametrize(
    "attributes",
    [
        {c.OPERATION: "chat", c.REQUEST_MODEL: "no-such-model-xyz", c.INPUT_TOKENS: "10"},
        {c.OPERATION: "chat", c.INPUT_TOKENS: "10"},  # no model at all
        {c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "ten"},
        {c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "-3"},
    ],
)
def test_unknown_model_or_bad_tokens_set_no_cost(attributes):
    assert c.COST not in priced(attributes)


def test_llm_operation_without_tokens_costs_zero():
    assert float(priced({c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o"})[c.COST]) == 0.0


def test_prices_file_override(tmp_path):
    path = tmp_path / "prices.json"
    doc = {
        "source": "test",
        "as_of": "2026-01-01",
        "models": {"house-model": {"input": 2, "output": 4, "cached_input": 1}},
    }
    path.write_text(json.dumps(doc))
    config = cost.Config(prices_file=str(path))
    a = priced({c.OPERATION: "chat", c.REQUEST_MODEL: "House-Model", c.INPUT_TOKENS: "500000",
                c.OUTPUT_TOKENS: "250000"}, config)
    assert float(a[c.COST]) == 2.0
    assert c.COST not in priced({c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o"}, config)


@pytest.mark.parametrize("content", [None, "{not json"])
def test_unusable_prices_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match="prices_file"):
        cost.create(cost.Config(prices_file=str(path)), None)


def test_format_cost_never_uses_an_exponent():
    assert cost.format_cost(3.75e-05) == "0.000037500000"
    assert cost.format_cost(0.0) == "0.000000000000"
    assert cost.format_cost(12.5) == "12.500000000000"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(load_prices())),
    st.integers(0, 10**7),
    st.integers(0, 10**6),
    st.integers(0, 10**7),
)
def test_stored_cost_equals_the_schema_formula(model, input_tokens, output_tokens, cached):
    a = priced({c.OPERATION: "chat", c.REQUEST_MODEL: model, c.INPUT_TOKENS: str(input_tokens),
                c.OUTPUT_TOKENS: str(output_tokens), c.CACHE_READ_INPUT_TOKENS: str(cached)})
    expected = cost_usd(load_prices(), model, input_tokens, output_tokens, cached)
    assert float(a[c.COST]) == pytest.approx(expected, rel=1e-9, abs=1e-12)


class _StorageHost:
    """The pipeline host as the cost processor sees it: a way to reach the storage."""

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database

    def storage_client(self):
        return connect(self.url, database=self.database)


def test_prices_come_from_the_price_table_and_follow_its_updates(chdb_url, database):
    client = connect(chdb_url, database=database)
    apply(client, SchemaOptions(database=database))
    insert = "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok) VALUES"
    client.command(f"{insert} ('House-Model', 1000, 2000, 0)")
    processor = cost.create(cost.Config(refresh_interval=0.0), None)
    processor.start(_StorageHost(chdb_url, database))
    try:
        span = {c.OPERATION: "chat", c.REQUEST_MODEL: "house-model", c.INPUT_TOKENS: "1000", c.OUTPUT_TOKENS: "500"}
        assert float(processor.process([make_span(dict(span))])[0].attributes[c.COST]) == pytest.approx(2.0)
        client.command(f"{insert} ('house-model', 10, 20, 0)")  # a price change: newest row wins
        assert float(processor.process([make_span(dict(span))])[0].attributes[c.COST]) == pytest.approx(0.02)
        # The table goes away: the prices in use stay.
        client.command("RENAME TABLE model_prices TO model_prices_away", settings={"check_table_dependencies": 0})
        assert float(processor.process([make_span(dict(span))])[0].attributes[c.COST]) == pytest.approx(0.02)
    finally:
        processor.shutdown()
        client.close()
