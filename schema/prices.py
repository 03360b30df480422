"""Model prices: the shipped price file, the ``model_prices`` table reader, the model-name
lookup rule and the cost formula.

The same rule and formula run inside ClickHouse (the migration files spell them out from the
constants below; ``tests/test_views.py`` checks both price every model name the same), so a
cost stored by the collector's cost processor and a cost priced by the views agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PROVIDER_PREFIX_RE = r"^.*/"
"""A leading ``provider/`` (OpenRouter style, also ``models/`` or ``accounts/x/models/``)."""
DATE_SUFFIX_RE = r"(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$"
"""A trailing release date: ``-2024-08-06``, ``-20241022``, ``@20250929`` (Vertex)."""
# Both patterns are plain enough to mean the same in Python's re and ClickHouse's re2.

_PROVIDER_PREFIX = re.compile(PROVIDER_PREFIX_RE)
_DATE_SUFFIX = re.compile(DATE_SUFFIX_RE)

PRICE_FILE = "prices.json"


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1,000,000 tokens."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float


class PriceFileError(ValueError):
    """The price file is malformed; the message names the entry to fix."""


def load_price_document(path: str | Path | None = None) -> dict:
    """The raw price file (``source``, ``as_of``, ``unit``, ``models``); default: the shipped one."""
    if path is None:
        text = resources.files(__package__).joinpath(PRICE_FILE).read_text(encoding="utf-8")
        where = PRICE_FILE
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{where} is not valid JSON: {exc}") from exc
    for key in ("source", "as_of", "models"):
        if key not in doc:
            raise PriceFileError(f"{where} has no top-level {key!r}")
    return doc


def load_prices(path: str | Path | None = None) -> dict[str, ModelPrice]:
    """Prices by model name (lower case, as in the file); default: the shipped price file."""
    prices = {}
    for name, entry in load_price_document(path)["models"].items():
        try:
            price = ModelPrice(
                float(entry["input"]), float(entry["output"]), float(entry["cached_input"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceFileError(
                f"price of {name!r} needs numeric input, output and cached_input: {exc}"
            ) from exc
        if min(price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok) < 0:
            raise PriceFileError(f"price of {name!r} is negative")
        prices[name.lower()] = price
    return prices


def load_prices_from_table(client, table: str) -> dict[str, ModelPrice]:
    """Prices as the ``model_prices`` table holds them now (the newest row per model wins),
    the same rows the views price with. ``client`` is a clickhouse-connect client."""
    result = client.query(
        f"SELECT lower(model), input_per_mtok, output_per_mtok, cached_input_per_mtok "
        f"FROM {table} ORDER BY updated_at"
    )
    return {name: ModelPrice(*rates) for name, *rates in result.result_rows}


def canonical_model(name: str, priced: Container[str] | None = None) -> str:
    """The price-table key for a model name as a span reports it.

    Lower-cased, any leading ``provider/`` removed. When ``priced`` (the known keys) is
    given and that name is not in it, a trailing date suffix is dropped as well, so
    ``claude-3-5-sonnet-20241022`` finds ``claude-3-5-sonnet``.
    """
    key = _PROVIDER_PREFIX.sub("", name.lower(), count=1)
    if priced is not None and key not in priced:
        undated = _DATE_SUFFIX.sub("", key, count=1)
        if undated in priced:
            return undated
    return key


def price_of(prices: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
    """The price of ``model`` under the lookup rule, or None when it is not priced."""
    return prices.get(canonical_model(model, prices))


def cost_usd(
    prices: Mapping[str, ModelPrice],
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_input_tokens: int = 0,
) -> float | None:
    """Cost of one call in USD, or None when the model is not priced.

    ``input_tokens`` includes the cached ones (GenAI semantic conventions); a writer that
    reports more cached than total input tokens is billed for cached tokens only.
    """
    if min(input_tokens, output_tokens, cache_read_input_tokens) < 0:
        raise ValueError("token counts cannot be negative")
    price = price_of(prices, model)
    if price is None:
        return None
    uncached = max(input_tokens - cache_read_input_tokens, 0)
    return (
        uncached * price.input_per_mtok
        + cache_read_input_tokens * price.cached_input_per_mtok
        + output_tokens * price.output_per_mtok
    ) / 1e6
