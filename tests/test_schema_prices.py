"""The price file, the model lookup rule and the cost formula (Python side)."""

from __future__ import annotations

import json

import pytest

from sessionlens.schema.prices import (
    ModelPrice,
    PriceFileError,
    canonical_model,
    cost_usd,
    load_price_document,
    load_prices,
)


def test_shipped_file_states_source_and_date_and_covers_the_big_providers():
    doc = load_price_document()
    assert doc["source"] and len(doc["as_of"]) == 10
    prices = load_prices()
    for model in ("gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "mistral-large-latest",
                  "deepseek-chat", "llama-3.3-70b-versatile", "command-r"):
        assert model in prices
    assert prices["gpt-4o-mini"] == ModelPrice(0.15, 0.60, 0.075)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("command-a-03-2025", "command-a-03-2025"),  # priced as is: no date stripping
        ("my-model-20240101", "my-model-20240101"),  # unknown either way: kept
    ],
)
def test_canonical_model(name, expected):
    assert canonical_model(name, load_prices()) == expected


def test_cost_formula_counts_cached_tokens_inside_input():
    prices = {"m": ModelPrice(2.0, 10.0, 0.5)}
    # 1000 input of which 400 cached, 100 output
    assert cost_usd(prices, "M-20250101", 1000, 100, 400) == pytest.approx(
        (600 * 2.0 + 400 * 0.5 + 100 * 10.0) / 1e6
    )
    assert cost_usd(prices, "unknown", 1000, 100) is None
    with pytest.raises(ValueError):
        cost_usd(prices, "m", -1, 0)


def test_malformed_price_file_is_named(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"source": "x", "as_of": "2025-01-01",
                               "models": {"m": {"input": 1}}}))
    with pytest.raises(PriceFileError, match="'m'"):
        load_prices(bad)
    bad.write_text("{")
    with pytest.raises(PriceFileError, match="not valid JSON"):
        load_prices(bad)
