"""The cost processor: prices LLM spans without a cost, with the schema's prices and formula."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlens import conventions as c
from sessionlens.storage import connect
from sessionlens.processors import cost
from sessionlens.schema.migrate import SchemaOptions, apply
from sessionlens.schema.price_seed import seed_rows
from sessionlens.schema.prices import PriceBook, cost_usd
from span_factory import make_span

BOOK = PriceBook(seed_rows())  # what the processor uses with no storage
EPOCH_DAY = date(1970, 1, 1)  # make_span's start time


# One processor for the tests that price with the default config, as the collector keeps one
# for its lifetime: each new one builds its price book from the installed genai-prices
# package (about 0.3 s), which the property test below paid for every example.
DEFAULT = cost.CostProcessor(cost.Config())


def priced(attributes: dict[str, str], config: cost.Config | None = None, start_ns: int | None = None) -> dict[str, str]:
    processor = DEFAULT if config is None else cost.CostProcessor(config)
    span = make_span(attributes)
    if start_ns is not None:
        span.start_time_unix_nano = start_ns
    return processor.process([span])[0].attributes


def _ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp()) * 10**9


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
    expected = cost_usd(BOOK.price("", "gpt-4o", "", EPOCH_DAY), 1000, 200, 400)
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
    assert float(a[c.COST]) == pytest.approx(BOOK.price("", "gpt-4o-mini", "", EPOCH_DAY).input_per_mtok)


def test_an_unpriced_response_model_is_priced_by_its_request_model():
    a = priced({c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", c.RESPONSE_MODEL: "gpt-4o-nextgen-x9",
                c.INPUT_TOKENS: "1000000", c.OUTPUT_TOKENS: "0"})
    assert float(a[c.COST]) == pytest.approx(2.5)  # gpt-4o's input price
    assert c.COST not in priced({c.OPERATION: "chat", c.REQUEST_MODEL: "no-such-x9",
                                 c.RESPONSE_MODEL: "no-such-x9-2026-01-01", c.INPUT_TOKENS: "10"})


def test_the_span_provider_picks_that_provider_price():
    span = {c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", c.INPUT_TOKENS: "1000000", c.OUTPUT_TOKENS: "0"}
    assert float(priced({**span, c.PROVIDER: "openai"})[c.COST]) == pytest.approx(2.5)
    # GitHub Copilot's gpt-4o is billed by subscription: 0 per token
    assert float(priced({**span, c.PROVIDER: "github-copilot"})[c.COST]) == 0.0


def test_cache_writes_are_priced_at_the_cache_write_price():
    a = priced({c.OPERATION: "chat", c.PROVIDER: "anthropic", c.REQUEST_MODEL: "claude-3-5-sonnet-20241022",
                c.INPUT_TOKENS: "1000000", c.CACHE_READ_INPUT_TOKENS: "200000",
                c.CACHE_CREATION_INPUT_TOKENS: "100000", c.OUTPUT_TOKENS: "0"})
    assert float(a[c.COST]) == pytest.approx((700_000 * 3.0 + 200_000 * 0.3 + 100_000 * 3.75) / 1e6)


def test_a_price_change_applies_from_its_date_by_the_span_start_time():
    span = {c.OPERATION: "chat", c.PROVIDER: "deepseek", c.REQUEST_MODEL: "deepseek-v4-flash",
            c.INPUT_TOKENS: "1000000", c.OUTPUT_TOKENS: "0"}
    days, prices = BOOK.schedule("deepseek", "deepseek-v4-flash", "")
    assert len(days) >= 3  # the package's price history for this model
    for day, price in zip(days[1:], prices[1:]):
        before = priced(dict(span), start_ns=_ns(day) - 86_400 * 10**9)
        on = priced(dict(span), start_ns=_ns(day) - 12 * 3600 * 10**9)  # the day's first ns
        assert float(on[c.COST]) == pytest.approx(price.input_per_mtok)
        assert float(before[c.COST]) != pytest.approx(price.input_per_mtok)


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


def test_format_cost_never_uses_an_exponent():
    assert cost.format_cost(3.75e-05) == "0.000037500000"
    assert cost.format_cost(0.0) == "0.000000000000"
    assert cost.format_cost(12.5) == "12.500000000000"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted({(r.provider, r.model) for r in seed_rows()})),
    st.integers(0, 10**7),
    st.integers(0, 10**6),
    st.integers(0, 10**7),
    st.integers(0, 10**6),
)
def test_stored_cost_equals_the_schema_formula(key, input_tokens, output_tokens, cached, written):
    provider, model = key
    a = priced({c.OPERATION: "chat", c.PROVIDER: provider, c.REQUEST_MODEL: model,
                c.INPUT_TOKENS: str(input_tokens), c.OUTPUT_TOKENS: str(output_tokens),
                c.CACHE_READ_INPUT_TOKENS: str(cached), c.CACHE_CREATION_INPUT_TOKENS: str(written)})
    expected = cost_usd(BOOK.price(provider, model, "", EPOCH_DAY), input_tokens, output_tokens, cached, written)
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
    processor = cost.CostProcessor(cost.Config(refresh_interval=0.0))
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
