"""The ``cost`` processor: prices LLM spans that carry no ``gen_ai.usage.cost``.

An LLM span is one whose ``gen_ai.operation.name`` is a model inference
(``conventions.LLM_OPERATIONS``), or one that reports tokens and is not an agent or tool
span (``conventions.AGENT_OPERATIONS``). Its model is the response model, else the request
model; prices, the model-name rule and the formula are ``sessionlens.schema.prices``, the
same the schema's views use, so a stored cost and a cost the views compute agree. A cost the
span carries wins. An unknown model gets no cost attribute (the views count it as 0 and list
the model as unpriced); so does a span with malformed token counts.

Prices come from the schema's ``model_prices`` table — the one users update with INSERTs
and the views price with — read at start and again every ``refresh_interval``; the shipped
price file (or ``prices_file``) stands in when there is no storage or the table cannot be
read. A span is thus priced as the table stood when it arrived, and the views, which prefer
a span's own cost, show that same figure.

The cost is written as a fixed-point decimal string (no exponent) so any reader parses it.
Runs after ``normalize``, which maps other instrumentations' token and cost names.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sessionlens import conventions as c
from sessionlens.collector.component import Duration
from sessionlens.collector.pdata import Span
from sessionlens.schema.names import PRICES_TABLE
from sessionlens.schema.quoting import ident
from sessionlens.schema.prices import (
    ModelPrice,
    PriceFileError,
    canonical_model,
    cost_usd,
    load_prices,
    load_prices_from_table,
)

log = logging.getLogger(__name__)

TYPE = "cost"

_MODEL_CACHE_SIZE = 10_000
"""Distinct model names remembered; model names are few, this only bounds a flood of junk."""
_UNSEEN = object()


@dataclass
class Config:
    prices_file: str = ""
    """Prices to use when the price table cannot be read (``prices.json`` format); empty:
    the shipped prices."""
    refresh_interval: Duration = 60.0
    """How often the price table is read again (the views' price dictionary lifetime)."""


def format_cost(usd: float) -> str:
    """``usd`` as a fixed-point decimal string to 1e-12 USD (no exponent)."""
    return f"{usd:.12f}"


class CostProcessor:
    """Adds ``gen_ai.usage.cost`` to priced LLM spans; the pipeline calls it one batch at a time."""

    def __init__(self, config: Config) -> None:
        try:
            self._prices = load_prices(config.prices_file or None)
        except (OSError, PriceFileError) as exc:
            raise ValueError(
                f"cost: cannot use prices_file {config.prices_file!r}: {exc}; "
                "fix the file or leave prices_file empty for the shipped prices"
            ) from exc
        # model name as spans report it -> USD per (uncached input, output, cached input)
        # token, or None when not priced. No lock: the pipeline hands a processor one
        # batch at a time.
        self._rates: dict[str, tuple[float, float, float] | None] = {}
        self._refresh_interval = config.refresh_interval
        self._next_refresh = float("inf")  # no price table until start() finds one
        self._client = None
        self._table = ""

    def start(self, host: object) -> None:
        client = getattr(host, "storage_client", lambda: None)()
        database = getattr(host, "database", None)
        if client is None or not database:
            return
        self._client, self._table = client, f"{ident(database)}.{ident(PRICES_TABLE)}"
        self._refresh()

    def _refresh(self) -> None:
        """Read the price table again; keep the prices in use when it cannot be read."""
        self._next_refresh = time.monotonic() + self._refresh_interval
        try:
            prices: dict[str, ModelPrice] = load_prices_from_table(self._client, self._table)
        except Exception as exc:  # storage trouble must not stop ingest
            log.warning("cost: cannot read %s (%s); keeping the prices in use", self._table, exc)
            return
        if prices != self._prices:
            self._prices = prices
            self._rates = {}

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()

    def _rates_of(self, model: str) -> tuple[float, float, float] | None:
        prices = self._prices
        key = canonical_model(model, prices)
        rates = None
        if key in prices:
            # cost_usd is linear in each token count: its per-token rates, taken once per
            # model, price a span without the name lookup (tests hold the two equal).
            rates = (
                cost_usd(prices, key, 1, 0),
                cost_usd(prices, key, 0, 1),
                cost_usd(prices, key, 1, 0, 1),
            )
        if len(self._rates) >= _MODEL_CACHE_SIZE:
            self._rates.clear()
        self._rates[model] = rates
        return rates

    def process(self, spans: list[Span]) -> list[Span]:
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        cache = self._rates
        for span in spans:
            a = span.attributes
            if c.COST in a:
                continue
            operation = a.get(c.OPERATION)
            if operation not in c.LLM_OPERATIONS and (
                operation in c.AGENT_OPERATIONS
                or (c.INPUT_TOKENS not in a and c.OUTPUT_TOKENS not in a)
            ):
                continue
            model = a.get(c.RESPONSE_MODEL) or a.get(c.REQUEST_MODEL)
            if not model:
                continue
            rates = cache.get(model, _UNSEEN)
            if rates is _UNSEEN:
                rates = self._rates_of(model)
            if rates is None:
                continue
            try:
                input_tokens = int(a.get(c.INPUT_TOKENS, 0))
                output_tokens = int(a.get(c.OUTPUT_TOKENS, 0))
                cached = int(a.get(c.CACHE_READ_INPUT_TOKENS, 0))
            except ValueError:  # a token count that is no integer
                continue
            if input_tokens < 0 or output_tokens < 0 or cached < 0:
                continue
            # As cost_usd: input counts include the cached ones.
            uncached = input_tokens - cached if input_tokens > cached else 0
            a[c.COST] = format_cost(
                uncached * rates[0] + output_tokens * rates[1] + cached * rates[2]
            )
        return spans


def create(config: Config, host: object = None) -> CostProcessor:
    """A cost processor; raises ValueError naming the file when ``prices_file`` is unusable."""
    return CostProcessor(config)
