"""The ``cost`` processor: prices LLM spans that carry no ``gen_ai.usage.cost``.

An LLM span is one whose ``gen_ai.operation.name`` is a model inference
(``conventions.LLM_OPERATIONS``), or one that reports tokens and is not an agent or tool
span (``conventions.AGENT_OPERATIONS``). It is priced by the lookup rule and formula of
``sessionlens.schema.prices`` — response model, else request model; the span's provider,
else any; the price in force on the span's (UTC) start day — the same rule the schema's
views evaluate in SQL, so a stored cost and a cost the views compute agree. A cost the span
carries wins. A span no price matches gets no cost attribute (the views count it as 0 and
in ``unpriced_calls``); so does a span with malformed token counts.

Prices come from the schema's ``model_prices_resolved`` view — the rows of the
``model_prices`` table users update with INSERTs, seeded from the genai-prices package,
that the views' price dictionary loads — read at start and again every
``refresh_interval``. With no storage, or while the view cannot be read at start, the
installed genai-prices package's prices stand in. A span is thus priced as the table stood
when it arrived, and the views, which prefer a span's own cost, show that same figure.

The cost is written as a fixed-point decimal string (no exponent) so any reader parses it.
Runs after ``normalize``, which maps other instrumentations' token, model, provider and
cost names.
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import dataclass
from datetime import date

from sessionlens import conventions as c
from sessionlens.durations import Duration
from sessionlens.collector.component import Capabilities, Consumer, Host, Processor, Settings
from sessionlens.collector.pdata import Span
from sessionlens.collector.processorhelper import FunctionProcessor
from sessionlens.schema.names import PRICES_VIEW
from sessionlens.schema.price_seed import seed_rows
from sessionlens.schema.prices import ModelPrice, PriceBook, cost_usd, load_price_rows
from sessionlens.schema.quoting import ident

log = logging.getLogger(__name__)

TYPE = "cost"

_MODEL_CACHE_SIZE = 10_000
"""Distinct (provider, models) remembered; they are few, this only bounds a flood of junk."""
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS_PER_DAY = 86_400 * 10**9

Rates = tuple[float, float, float, float]
"""USD per token: uncached input, output, cache-read input, cache-write input."""


@dataclass
class Config:
    refresh_interval: Duration = 60.0
    """How often the prices are read again (the views' price dictionary lifetime)."""


def format_cost(usd: float) -> str:
    """``usd`` as a fixed-point decimal string to 1e-12 USD (no exponent)."""
    return f"{usd:.12f}"


def _rates(price: ModelPrice | None) -> Rates | None:
    if price is None:
        return None
    # cost_usd is linear in each token count: its per-token rates, taken once per price,
    # price a span without the lookup (tests hold the two equal)
    return (
        cost_usd(price, 1, 0),
        cost_usd(price, 0, 1),
        cost_usd(price, 1, 0, 1),
        cost_usd(price, 1, 0, 0, 1),
    )


class CostProcessor:
    """Adds ``gen_ai.usage.cost`` to priced LLM spans; the pipeline calls it one batch at a time."""

    def __init__(self, config: Config) -> None:
        self._book: PriceBook | None = None  # the package's prices, built on first use
        # (provider, response model, request model) -> (first day of each price as a day
        # number since the epoch, the per-token rates from that day on, None = unpriced).
        # No lock: the pipeline hands a processor one batch at a time.
        self._schedules: dict[tuple[str, str, str], tuple[list[int], list[Rates | None]]] = {}
        self._refresh_interval = config.refresh_interval
        self._next_refresh = float("inf")  # no price view until start() finds one
        self._client = None
        self._view = ""

    def start(self, host: Host) -> None:
        client = host.storage_client()
        database = host.database
        if client is not None and database:
            self._client, self._view = client, f"{ident(database)}.{ident(PRICES_VIEW)}"
            self._refresh()
        if self._book is None:  # built here, at start, rather than on the first span
            self._book = PriceBook(seed_rows())

    def _refresh(self) -> None:
        """Read the prices again; keep the prices in use when they cannot be read."""
        self._next_refresh = time.monotonic() + self._refresh_interval
        try:
            book = PriceBook(load_price_rows(self._client, self._view))
        except Exception as exc:  # storage trouble must not stop ingest
            log.warning("cost: cannot read %s (%s); keeping the prices in use", self._view, exc)
            return
        if book != self._book:
            self._book = book
            self._schedules = {}

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()

    def _schedule(self, key: tuple[str, str, str]) -> tuple[list[int], list[Rates | None]]:
        if self._book is None:  # process() without start()
            self._book = PriceBook(seed_rows())
        days, prices = self._book.schedule(*key)
        schedule = ([d.toordinal() - _EPOCH_ORDINAL for d in days], [_rates(p) for p in prices])
        if len(self._schedules) >= _MODEL_CACHE_SIZE:
            self._schedules.clear()
        self._schedules[key] = schedule
        return schedule

    def process(self, spans: list[Span]) -> list[Span]:
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        for span in spans:
            a = span.attributes
            if c.COST in a:
                continue
            try:
                counts = (
                    int(a.get(c.INPUT_TOKENS, 0)), int(a.get(c.OUTPUT_TOKENS, 0)),
                    int(a.get(c.CACHE_READ_INPUT_TOKENS, 0)), int(a.get(c.CACHE_CREATION_INPUT_TOKENS, 0)),
                )
            except ValueError:  # a token count that is no integer
                continue
            cost = self._cost(
                a.get(c.OPERATION), c.INPUT_TOKENS in a or c.OUTPUT_TOKENS in a,
                a.get(c.PROVIDER, ""), a.get(c.RESPONSE_MODEL, ""), a.get(c.REQUEST_MODEL, ""),
                span.start_time_unix_nano, *counts,
            )
            if cost is not None:
                a[c.COST] = cost
        return spans

    def process_columns(self, spans) -> None:
        """The engine path: the same prices as decisions over ``SpanColumns``."""
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        cols = spans.columns
        has_cost, operation, provider = cols["has_cost"], cols[c.OPERATION], cols[c.PROVIDER]
        response_model, request_model, start = cols[c.RESPONSE_MODEL], cols[c.REQUEST_MODEL], cols["start"]
        inputs, outputs = cols[c.INPUT_TOKENS], cols[c.OUTPUT_TOKENS]
        cache_reads, cache_writes = cols[c.CACHE_READ_INPUT_TOKENS], cols[c.CACHE_CREATION_INPUT_TOKENS]
        decided = spans.cost
        for i in range(len(spans)):
            if has_cost[i]:
                continue
            cost = self._cost(
                operation[i], inputs[i] is not None or outputs[i] is not None,
                provider[i], response_model[i], request_model[i], start[i],
                inputs[i] or 0, outputs[i] or 0, cache_reads[i] or 0, cache_writes[i] or 0,
            )
            if cost is not None:
                decided[i] = cost

    def _cost(
        self, operation: str | None, has_tokens: bool, provider: str, response_model: str,
        request_model: str, start_unix_nano: int, input_tokens: int, output_tokens: int,
        cache_read: int, cache_write: int,
    ) -> str | None:
        """The cost of an LLM span without one, formatted (None: not an LLM span, no price,
        or a negative count)."""
        if operation not in c.LLM_OPERATIONS and (operation in c.AGENT_OPERATIONS or not has_tokens):
            return None
        if not response_model and not request_model:
            return None
        key = (provider, response_model, request_model)
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedule(key)
        days, all_rates = schedule
        # the UTC day the call started on, as the views' toDate(Timestamp, 'UTC')
        day = start_unix_nano // _NS_PER_DAY
        rates = all_rates[0] if len(days) == 1 else all_rates[bisect.bisect_right(days, day) - 1]
        if rates is None or min(input_tokens, output_tokens, cache_read, cache_write) < 0:
            return None
        # As cost_usd: input counts include the cache-read and cache-write ones.
        uncached = input_tokens - cache_read - cache_write
        if uncached < 0:
            uncached = 0
        return format_cost(
            uncached * rates[0] + output_tokens * rates[1] + cache_read * rates[2] + cache_write * rates[3]
        )


def capabilities(config: Config) -> Capabilities:
    """Spans and the engine path's columns."""
    return Capabilities(columns=True)


def create(config: Config, settings: Settings, next_consumer: Consumer) -> Processor:
    """A cost processor, handing on to ``next_consumer``."""
    processor = CostProcessor(config)
    return FunctionProcessor(
        settings, next_consumer, processor.process,
        process_columns=processor.process_columns, start=processor.start, shutdown=processor.shutdown,
    )
