"""Model prices: the lookup rule, the cost formula, and the prices as the schema holds them.

Prices live in the ``model_prices`` table (seeded from the genai-prices package by
:mod:`sessionlens.schema.price_seed`, overridden by users' INSERTs) and are read through the
``model_prices_dict`` dictionary, which applies the rules of the table (a user row wins
over seeded rows). The views evaluate the same lookup rule and formula in SQL (frozen in
the schema's migration files); the cost processor evaluates them here, on the dictionary's
rows, so a cost stored by the collector and a cost priced by the views agree (tested).

The lookup rule, for a span's provider, response model, request model and UTC day:

1. the response model, then the request model (a new dated snapshot with no price yet is
   priced by the model the application asked for);
2. for each: the span's provider (``gen_ai.provider.name``, lower-cased), then any provider
   (rows with provider ``''``);
3. for each: the name lower-cased, then without a leading ``provider/`` (OpenRouter style,
   ``models/``, ``accounts/x/models/``), then also without a trailing Bedrock version
   (``-v2:0``), then also without a trailing release date (``-2024-08-06``, ``-20241022``,
   ``@20250929``);

the first name with a price in force on that day wins. A price is in force from its
``effective_from`` day until the next row of the same provider and name.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

PROVIDER_PREFIX_RE = r"^.*/"
"""A leading ``provider/`` (OpenRouter style, also ``models/`` or ``accounts/x/models/``)."""
VERSION_SUFFIX_RE = r"-v[0-9]+(:[0-9]+)?$"
"""A trailing Bedrock model version: ``-v2:0``, ``-v1``."""
DATE_SUFFIX_RE = r"(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$"
"""A trailing release date: ``-2024-08-06``, ``-20241022``, ``@20250929`` (Vertex)."""
# Both patterns are plain enough to mean the same in Python's re and ClickHouse's re2.

_PROVIDER_PREFIX = re.compile(PROVIDER_PREFIX_RE)
_VERSION_SUFFIX = re.compile(VERSION_SUFFIX_RE)
_DATE_SUFFIX = re.compile(DATE_SUFFIX_RE)

EPOCH = date(1970, 1, 1)
"""``effective_from`` of a price that has always been in force."""
ANY_PROVIDER = ""


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1,000,000 tokens: input, output, cache-read input, cache-write input."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    cache_write_per_mtok: float


@dataclass(frozen=True)
class PriceRow:
    """One price: for ``model`` (lower case) of ``provider`` (``''``: any) from a UTC day on."""

    provider: str
    model: str
    effective_from: date
    price: ModelPrice


def name_variants(model: str) -> tuple[str, ...]:
    """The names a model is looked up by, in order (rule step 3)."""
    name = model.lower()
    bare = _PROVIDER_PREFIX.sub("", name, count=1)
    unversioned = _VERSION_SUFFIX.sub("", bare, count=1)
    undated = _DATE_SUFFIX.sub("", unversioned, count=1)
    return tuple(dict.fromkeys((name, bare, unversioned, undated)))


def cost_usd(
    price: ModelPrice,
    input_tokens: int,
    output_tokens: int,
    cache_read_input_tokens: int = 0,
    cache_write_input_tokens: int = 0,
) -> float:
    """Cost of one call in USD at ``price``.

    ``input_tokens`` includes the cache-read and cache-write ones (GenAI semantic
    conventions); a writer that reports more cache tokens than input tokens is billed for
    the cache tokens only.
    """
    if min(input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens) < 0:
        raise ValueError("token counts cannot be negative")
    uncached = max(input_tokens - cache_read_input_tokens - cache_write_input_tokens, 0)
    return (
        uncached * price.input_per_mtok
        + cache_read_input_tokens * price.cached_input_per_mtok
        + cache_write_input_tokens * price.cache_write_per_mtok
        + output_tokens * price.output_per_mtok
    ) / 1e6


class PriceBook:
    """Prices by (provider, name) and day, with the lookup rule of the module docstring."""

    def __init__(self, rows: Iterable[PriceRow]) -> None:
        history: dict[tuple[str, str], list[tuple[date, ModelPrice]]] = {}
        for row in rows:
            history.setdefault((row.provider.lower(), row.model.lower()), []).append(
                (row.effective_from, row.price)
            )
        self._days: dict[tuple[str, str], list[date]] = {}
        self._prices: dict[tuple[str, str], list[ModelPrice]] = {}
        for key, changes in history.items():
            # one price per day (the dictionary keeps one too); oldest first
            by_day = dict(sorted(changes, key=lambda change: change[0]))
            self._days[key] = list(by_day)
            self._prices[key] = list(by_day.values())

    def __len__(self) -> int:
        return sum(len(days) for days in self._days.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceBook) and (self._days, self._prices) == (
            other._days,
            other._prices,
        )

    def _in_force(self, key: tuple[str, str], day: date) -> ModelPrice | None:
        days = self._days.get(key)
        if days is None:
            return None
        i = bisect.bisect_right(days, day)
        return self._prices[key][i - 1] if i else None

    def _keys(self, provider: str, models: Iterable[str]) -> list[tuple[str, str]]:
        providers = dict.fromkeys((provider.lower(), ANY_PROVIDER))
        return [
            (p, name)
            for model in models
            if model
            for p in providers
            for name in name_variants(model)
            if (p, name) in self._days
        ]

    def price(
        self, provider: str, response_model: str, request_model: str, day: date
    ) -> ModelPrice | None:
        """The price of a call on ``day`` under the lookup rule; None when nothing is priced."""
        for key in self._keys(provider, (response_model, request_model)):
            price = self._in_force(key, day)
            if price is not None:
                return price
        return None

    def schedule(
        self, provider: str, response_model: str, request_model: str
    ) -> tuple[list[date], list[ModelPrice | None]]:
        """The price of such a call as it changes over time: ``(days, prices)``, where
        ``prices[i]`` is in force from ``days[i]`` (ascending; ``days[0]`` is the epoch)
        until the next day. Lets a caller price many calls of one model by ``bisect``."""
        keys = self._keys(provider, (response_model, request_model))
        days = sorted({EPOCH, *(d for key in keys for d in self._days[key])})
        return days, [self.price(provider, response_model, request_model, d) for d in days]


def load_price_rows(client, dictionary: str) -> list[PriceRow]:
    """The prices the views use: the rows of the ``model_prices_dict`` dictionary
    (``dictionary`` is its quoted name; ``client`` a clickhouse-connect client)."""
    result = client.query(
        "SELECT provider, model, effective_from, input_per_mtok, output_per_mtok, "
        f"cached_input_per_mtok, cache_write_per_mtok FROM {dictionary}"
    )
    return [
        PriceRow(provider, model, effective_from, ModelPrice(*rates))
        for provider, model, effective_from, *rates in result.result_rows
    ]
