"""Seed rows for ``model_prices`` from the installed ``genai-prices`` package.

`genai-prices <https://github.com/pydantic/genai-prices>`_ is a maintained, versioned price
database (providers, models, input/output/cache prices, price history with start dates).
It matches a model reference with per-model clauses (equals, starts-with, regex …) that a
ClickHouse dictionary cannot evaluate, so this module flattens the package's bundled data
into rows of ``(provider, model name, effective_from, prices)``:

- **names**: each model's id and the literal names its clauses mention (``equals`` values,
  ``starts_with``/``ends_with``/``contains`` text, the literal head of a regex); every name
  is resolved back through the package's own matcher (``Provider.find_model``), so a name
  gets the price the package itself gives it. Dated snapshots a clause matches by pattern
  (``claude-3-5-sonnet-20241022``) are found by the lookup rule of
  :mod:`sessionlens.schema.prices`, which drops a date suffix.
- **providers** are the OpenTelemetry ``gen_ai.provider.name`` values spans carry
  (``aws.bedrock``, ``gcp.vertex_ai`` …, :data:`PROVIDER_NAMES`), plus rows with provider
  ``''`` for spans whose provider is unknown: those take the provider the package picks for
  the bare model name (its ``model_match``), else the first provider listing the name.
- **effective dates**: one row per date from which the package's price changes (its
  ``StartDateConstraint`` history); the first row of a model is effective from
  1970-01-01, as the package uses its first price before any start date.

What the flat rows cannot say, and what is used instead: tiered long-context prices use the
base tier; time-of-day prices (DeepSeek's off-peak discount) use the price in force for
most of the UTC day; service-tier and batch variants are left out (standard prices).
A missing cache-read or cache-write price means those tokens cost the input price, as in
the package.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time, timezone
from decimal import Decimal
from importlib import metadata

from sessionlens.schema.names import PRICES_DICTIONARY, PRICES_TABLE
from sessionlens.schema.quoting import literal
from sessionlens.schema.options import SchemaOptions
from sessionlens.schema.prices import ANY_PROVIDER, EPOCH, ModelPrice, PriceRow

PACKAGE = "genai-prices"
SEED_FORMAT = 1
"""Bumped when this module flattens the package differently: the seed is then redone."""
SOURCE_PREFIX = "genai-prices"
"""``model_prices.source`` of seeded rows starts with this; any other source is a user row."""

PROVIDER_NAMES: dict[str, tuple[str, ...]] = {
    "aws": ("aws.bedrock",),
    "azure": ("azure.ai.openai", "azure.ai.inference"),
    "google": ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"),
    "mistral": ("mistral_ai",),
    "x-ai": ("x_ai",),
}
"""genai-prices provider id -> the ``gen_ai.provider.name`` values (OpenTelemetry GenAI
semantic conventions) that mean it; any other provider is named by its genai-prices id
(``openai``, ``anthropic``, ``groq``, ``deepseek``, ``openrouter`` …)."""

_SLOTS = tuple(time(h, m, tzinfo=timezone.utc) for h in range(24) for m in (0, 15, 30, 45))


def installed_version() -> str:
    """The installed genai-prices version; raises a clear error when it is missing."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "the genai-prices package is not installed: pip install 'sessionlens[collector]'"
        ) from None


def seed_source(version: str | None = None) -> str:
    """The ``source`` of rows seeded from genai-prices ``version`` (default: installed)."""
    return f"{SOURCE_PREFIX}=={version or installed_version()}/seed{SEED_FORMAT}"


def _span_names(provider_id: str) -> tuple[str, ...]:
    return PROVIDER_NAMES.get(provider_id, (provider_id,))


def _clause_names(clause) -> Iterator[str]:
    from genai_prices import types as t

    if isinstance(clause, t.ClauseEquals):
        yield clause.equals
    elif isinstance(clause, t.ClauseStartsWith):
        yield clause.starts_with.rstrip("-@.:/_")
    elif isinstance(clause, t.ClauseEndsWith):
        yield clause.ends_with.lstrip("/")
    elif isinstance(clause, t.ClauseContains):
        yield clause.contains
    elif isinstance(clause, t.ClauseRegex):
        head = re.match(r"\^((?:[A-Za-z0-9_:/@-]|\\\.)+)", clause.regex)
        if head:
            yield head.group(1).replace("\\.", ".").rstrip("-@.:/_")
    elif isinstance(clause, t.ClauseOr):
        for inner in clause.or_:
            yield from _clause_names(inner)
    elif isinstance(clause, t.ClauseAnd):
        # a name must pass every clause; the candidates of the first are checked below
        if clause.and_:
            yield from _clause_names(clause.and_[0])


def _model_names(model) -> set[str]:
    names = {n.lower() for n in (model.id, *_clause_names(model.match)) if n}
    # Bedrock ids stand for every region: "regional.anthropic.…-v1:0" is called as
    # "anthropic.…-v1:0" (regions' own prefixes, "us.anthropic.…", are in the clauses)
    return names | {n.removeprefix("regional.") for n in names}


def _rate(value) -> float | None:
    from genai_prices.types import TieredPrices

    if isinstance(value, TieredPrices):
        value = value.base
    return None if value is None else float(Decimal(value))


def _price(model_price) -> ModelPrice:
    """Our four token rates from a genai-prices ``ModelPrice`` (tokens it puts no price on
    cost 0, as in the package: free models, models billed by request or audio time)."""
    input_ = _rate(model_price.input_mtok) or 0.0
    output = _rate(model_price.output_mtok)
    cache_read = _rate(model_price.cache_read_mtok)
    cache_write = _rate(model_price.cache_write_mtok)
    return ModelPrice(
        input_,
        output or 0.0,
        input_ if cache_read is None else cache_read,
        input_ if cache_write is None else cache_write,
    )


def _price_on(model, day: date) -> ModelPrice:
    """The package's price for ``model`` on ``day`` (most of the UTC day when it varies)."""
    from genai_prices import types as t

    conditional = model.prices if isinstance(model.prices, list) else []
    if any(isinstance(p.constraint, t.TimeOfDateConstraint) for p in conditional):
        votes = Counter(repr(model.get_prices(datetime.combine(day, s))) for s in _SLOTS)
        prevailing = votes.most_common(1)[0][0]
        for s in _SLOTS:
            chosen = model.get_prices(datetime.combine(day, s))
            if repr(chosen) == prevailing:
                return _price(chosen)
    return _price(model.get_prices(datetime.combine(day, time(12, tzinfo=timezone.utc))))


def _history(model) -> list[tuple[date, ModelPrice]]:
    """(effective_from, price) of ``model``, one entry per change, oldest first."""
    from genai_prices import types as t

    days = {EPOCH}
    for conditional in model.prices if isinstance(model.prices, list) else []:
        if isinstance(conditional.constraint, t.StartDateConstraint):
            days.add(conditional.constraint.start_date)
    history: list[tuple[date, ModelPrice]] = []
    for day in sorted(days):
        price = _price_on(model, day)
        if not history or history[-1][1] != price:
            history.append((day, price))
    return history


@functools.cache
def seed_rows() -> tuple[PriceRow, ...]:
    """Every price of the installed genai-prices, flattened (see the module docstring)."""
    from genai_prices.data import providers

    by_id = {p.id: p for p in providers}
    histories: dict[int, list[tuple[date, ModelPrice]]] = {}

    def history(model) -> list[tuple[date, ModelPrice]]:
        if id(model) not in histories:
            histories[id(model)] = _history(model)
        return histories[id(model)]

    # (provider id, name) -> model, as the package's matcher resolves the name
    resolved: dict[tuple[str, str], object] = {}
    for provider in providers:
        fallbacks = [by_id[f] for f in provider.fallback_model_providers or () if f in by_id]
        names = {n for source in (provider, *fallbacks) for m in source.models for n in _model_names(m)}
        for name in names:
            model = provider.find_model(name, all_providers=providers)
            if model is not None:
                resolved[(provider.id, name)] = model
    rows: dict[tuple[str, str], list[tuple[date, ModelPrice]]] = {}
    for (provider_id, name), model in resolved.items():
        for span_name in _span_names(provider_id):
            rows[(span_name, name)] = history(model)
    # A span of unknown provider: the provider the package picks for the bare name (its
    # model_match), else the first provider listing the name.
    for name in sorted({name for _, name in resolved}):
        picked = next(
            (p.id for p in providers if p.model_match is not None and p.model_match.is_match(name)),
            None,
        )
        if (picked, name) not in resolved:
            picked = next(p.id for p in providers if (p.id, name) in resolved)
        rows[(ANY_PROVIDER, name)] = history(resolved[(picked, name)])
    return tuple(
        PriceRow(provider, name, day, price)
        for (provider, name), changes in sorted(rows.items())
        for day, price in changes
    )


SEED_COLUMNS = (
    "provider", "model", "effective_from", "input_per_mtok", "output_per_mtok",
    "cached_input_per_mtok", "cache_write_per_mtok", "source", "seeded",
)


def seed_values() -> list[tuple]:
    """``seed_rows`` as ``model_prices`` rows (the columns of :data:`SEED_COLUMNS`)."""
    source = seed_source()
    return [
        (r.provider, r.model, r.effective_from, r.price.input_per_mtok, r.price.output_per_mtok,
         r.price.cached_input_per_mtok, r.price.cache_write_per_mtok, source, 1)
        for r in seed_rows()
    ]


def seed_statement(table: str) -> str:
    """The seed as one INSERT statement (``sessionlens schema print``); ``table`` quoted."""
    values = ",\n".join(
        f"({literal(p)}, {literal(m)}, {literal(day.isoformat())}, {i!r}, {o!r}, {c!r}, {w!r}, "
        f"{literal(source)}, {seeded})"
        for p, m, day, i, o, c, w, source, seeded in seed_values()
    )
    return f"INSERT INTO {table} ({', '.join(SEED_COLUMNS)}) VALUES\n{values}"


def refresh(client, options: SchemaOptions) -> bool:
    """Bring the seeded rows of ``model_prices`` up to the installed genai-prices version;
    True when it seeded.

    Idempotent, one query when the seed is current. Otherwise the package's rows are
    inserted as one block, then the rows of other seeds are deleted (until that mutation
    is done, the ``model_prices_resolved`` view reads the latest seed only), and the price
    dictionary is reloaded. Users' rows (``seeded = 0``) are never touched.
    """
    table = options.table(PRICES_TABLE)
    current = seed_source()
    latest, stale = client.query(
        f"SELECT argMax(source, updated_at), countIf(source != {{s:String}}) FROM {table} "
        "WHERE seeded = 1",
        parameters={"s": current},
    ).result_rows[0]
    seeded = latest != current
    if seeded:
        client.insert(
            PRICES_TABLE, seed_values(), database=options.database, column_names=list(SEED_COLUMNS)
        )
    if stale:
        client.command(
            f"ALTER TABLE {table}{options.on_cluster} DELETE WHERE seeded = 1 AND source != {{s:String}}",
            parameters={"s": current},
        )
    if seeded:
        client.command(f"SYSTEM RELOAD DICTIONARY {options.table(PRICES_DICTIONARY)}")
    return seeded
