"""Prices: the genai-prices seed, the lookup rule and the cost formula (Python side)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import genai_prices
import pytest
from genai_prices import types as gp

from sessionlens.schema.price_seed import PROVIDER_NAMES, seed_rows, seed_source
from sessionlens.schema.prices import EPOCH, ModelPrice, PriceBook, PriceRow, cost_usd, name_variants

BOOK = PriceBook(seed_rows())
DAY = date(2026, 6, 1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GPT-4o", ("gpt-4o",)),
        ("openai/gpt-4o-mini", ("openai/gpt-4o-mini", "gpt-4o-mini")),
        ("gpt-4o-2024-08-06", ("gpt-4o-2024-08-06", "gpt-4o")),
        ("claude-3-5-sonnet-20241022", ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet")),
        ("claude-sonnet-4-5@20250929", ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5")),
        ("models/gemini-2.5-pro", ("models/gemini-2.5-pro", "gemini-2.5-pro")),
        (
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            (
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                "us.anthropic.claude-3-5-sonnet-20241022",
                "us.anthropic.claude-3-5-sonnet",
            ),
        ),
        ("command-a-03-2025", ("command-a-03-2025",)),  # no date suffix of ours
    ],
)
def test_name_variants(name, expected):
    assert name_variants(name) == expected


def test_cost_formula_counts_cache_tokens_inside_input():
    price = ModelPrice(2.0, 10.0, 0.5, 2.5)
    # 1000 input of which 400 cache reads and 100 cache writes, 100 output
    assert cost_usd(price, 1000, 100, 400, 100) == pytest.approx(
        (500 * 2.0 + 400 * 0.5 + 100 * 2.5 + 100 * 10.0) / 1e6
    )
    # more cache tokens than input tokens: billed for the cache tokens only
    assert cost_usd(price, 10, 0, 400) == pytest.approx(400 * 0.5 / 1e6)
    with pytest.raises(ValueError):
        cost_usd(price, -1, 0)


def _has_only_flat_token_prices(model) -> bool:
    """Models the flat rows price exactly: no tiers, time-of-day or per-request fees."""
    prices = model.prices if isinstance(model.prices, list) else [gp.ConditionalPrice(prices=model.prices)]
    for conditional in prices:
        if isinstance(conditional.constraint, gp.TimeOfDateConstraint):
            return False
        for key, value in conditional.prices.__dict__.items():
            if isinstance(value, gp.TieredPrices) or (value is not None and key == "requests_kcount"):
                return False
    return True


def test_every_flat_priced_model_costs_what_genai_prices_says_on_every_price_date():
    usage = genai_prices.Usage(
        input_tokens=1_000_000, cache_read_tokens=200_000, cache_write_tokens=100_000,
        output_tokens=500_000,
    )
    checked, wrong = 0, []
    for provider in genai_prices.data_snapshot.get_snapshot().providers:
        span_provider = PROVIDER_NAMES.get(provider.id, (provider.id,))[0]
        for model in provider.models:
            if not _has_only_flat_token_prices(model):
                continue
            starts = [
                p.constraint.start_date
                for p in (model.prices if isinstance(model.prices, list) else [])
                if isinstance(p.constraint, gp.StartDateConstraint)
            ]
            for day in (date(2023, 1, 1), DAY, *starts):
                when = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
                try:
                    expected = float(
                        genai_prices.calc_price(
                            usage, model.id, provider_id=provider.id, genai_request_timestamp=when
                        ).total_price
                    )
                except LookupError:  # an id the package's own clauses do not match
                    continue
                price = BOOK.price(span_provider, model.id, "", day)
                got = None if price is None else cost_usd(price, 1_000_000, 500_000, 200_000, 100_000)
                checked += 1
                if got is None or abs(got - expected) > 1e-9:
                    wrong.append((provider.id, model.id, day, expected, got))
    assert checked > 4000 and wrong == []


def test_known_models_are_seeded_with_the_package_prices():
    assert BOOK.price("openai", "gpt-4o", "", DAY) == ModelPrice(2.5, 10.0, 1.25, 2.5)
    assert BOOK.price("openai", "gpt-4o-mini-2024-07-18", "", DAY) == ModelPrice(0.15, 0.6, 0.075, 0.15)
    assert BOOK.price("anthropic", "claude-3-5-sonnet-20241022", "", DAY) == ModelPrice(3.0, 15.0, 0.3, 3.75)
    # a Bedrock call, by its region-prefixed, versioned model id
    assert BOOK.price("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "", DAY) == (
        ModelPrice(3.0, 15.0, 0.3, 3.75)
    )
    # no provider on the span: the provider genai-prices picks for the bare name
    assert BOOK.price("", "gpt-4o", "", DAY) == BOOK.price("openai", "gpt-4o", "", DAY)


def test_the_provider_disambiguates_a_name_two_providers_price_differently():
    # GitHub Copilot bills gpt-4o by subscription: 0 per token there, OpenAI's price elsewhere
    assert BOOK.price("github-copilot", "gpt-4o", "", DAY) == ModelPrice(0.0, 0.0, 0.0, 0.0)
    assert BOOK.price("openai", "gpt-4o", "", DAY).input_per_mtok == 2.5
    # a provider with no such model falls back to the model-only price
    assert BOOK.price("some-gateway", "gpt-4o", "", DAY) == BOOK.price("", "gpt-4o", "", DAY)


def test_price_history_becomes_effective_dates():
    model = next(
        m
        for p in genai_prices.data_snapshot.get_snapshot().providers
        if p.id == "deepseek"
        for m in p.models
        if m.id == "deepseek-v4-flash"
    )
    starts = sorted(
        c.constraint.start_date for c in model.prices if isinstance(c.constraint, gp.StartDateConstraint)
    )
    rows = [r for r in seed_rows() if (r.provider, r.model) == ("deepseek", "deepseek-v4-flash")]
    assert [r.effective_from for r in rows] == [EPOCH, *starts]
    for row in rows:
        when = datetime.combine(row.effective_from, datetime.min.time(), timezone.utc)
        assert BOOK.price("deepseek", "deepseek-v4-flash", "", row.effective_from) == row.price
        # off-peak hours aside, the package's own price on that day
        assert row.price.input_per_mtok == float(model.get_prices(when.replace(hour=12)).input_mtok)


def test_seed_source_names_the_installed_package_version():
    assert seed_source() == f"genai-prices=={genai_prices.__version__}/seed1"


def test_price_book_rule_effective_dates_provider_and_request_model_fallback():
    old, new, house = ModelPrice(1, 2, 0.5, 1), ModelPrice(3, 4, 1, 3), ModelPrice(9, 9, 9, 9)
    book = PriceBook([
        PriceRow("", "m", EPOCH, old),
        PriceRow("", "m", date(2026, 3, 1), new),
        PriceRow("acme", "m", date(2026, 5, 1), house),
    ])
    assert book.price("", "M", "", date(2026, 2, 28)) == old
    assert book.price("", "m", "", date(2026, 3, 1)) == new
    # acme's own price from its date on; before it, the any-provider history
    assert book.price("Acme", "m", "", date(2026, 4, 30)) == new
    assert book.price("acme", "m", "", date(2026, 5, 1)) == house
    # a response model with no price (a new snapshot) is priced by the request model
    assert book.price("", "m-next-2026-09-01x", "m", DAY) == new
    assert book.price("", "unknown", "also-unknown", DAY) is None
    days, prices = book.schedule("acme", "m", "")
    assert days == [EPOCH, date(2026, 3, 1), date(2026, 5, 1)] and prices == [old, new, house]
