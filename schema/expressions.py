"""SQL expressions generated from the conventions and the price rule, never hand-written twice.

Attribute names come from :mod:`sessionlens.conventions` (canonical key first, then its
aliases); the model lookup rule and the cost formula come from
:mod:`sessionlens.schema.prices`, so Python and ClickHouse price a call the same way.
"""

from __future__ import annotations

from sessionlens import conventions as conv
from sessionlens.schema.prices import DATE_SUFFIX_RE, PROVIDER_PREFIX_RE

SPAN = "SpanAttributes"
RESOURCE = "ResourceAttributes"


def literal(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    """A quoted ClickHouse identifier (database, table, cluster)."""
    if not name or "`" in name or "\\" in name:
        raise ValueError(f"invalid ClickHouse identifier {name!r}")
    return f"`{name}`"


def attribute(key: str, maps: tuple[str, ...] = (SPAN, RESOURCE)) -> str:
    """The value of ``key`` or the first alias the span carries, span attributes first.

    A map carrying none of the names (or only an empty value) defers to the next map.
    """
    names = (key, *conv.ALIASES.get(key, ()))
    lookups = [f"{m}[{_first_key(m, names)}]" for m in maps]
    value = lookups[-1]
    for lookup in reversed(lookups[:-1]):
        value = f"if({lookup} != '', {lookup}, {value})"
    return value


def _first_key(map_: str, names: tuple[str, ...]) -> str:
    # Each map lookup scans the row's keys (~0.15 µs a span), while mapContains of a key
    # absent from the part's LowCardinality dictionary is nearly free: pick the key first,
    # then look up once per map, instead of once per alias.
    if len(names) == 1:
        return literal(names[0])
    picks = ", ".join(f"mapContains({map_}, {literal(n)}), {literal(n)}" for n in names)
    return f"multiIf({picks}, {literal(names[0])})"


def in_set(expr: str, values: frozenset[str]) -> str:
    return f"{expr} IN (" + ", ".join(literal(v) for v in sorted(values)) + ")"


def derived_columns() -> list[tuple[str, str, str]]:
    """(name, type, MATERIALIZED expression) of the session columns of ``otel_traces``.

    MATERIALIZED, so rows written by any writer (a stock OTel Collector included) get them.
    """
    session = attribute(conv.SESSION_ID)
    response_model = attribute(conv.RESPONSE_MODEL)
    llm_ops = in_set("Operation", conv.LLM_OPERATIONS)
    agent_ops = in_set("Operation", conv.AGENT_OPERATIONS)
    return [
        ("Project", "LowCardinality(String)", attribute(conv.PROJECT, (RESOURCE,))),
        # A span with no session id at all (a stock writer with no sessionlens collector
        # in front) gets a session per trace, so no data is invisible in the views.
        ("SessionId", "String", f"if({session} != '', {session}, TraceId)"),
        (
            "SessionSource",
            "LowCardinality(String)",
            f"multiIf({attribute(conv.SESSION_SOURCE)} != '', {attribute(conv.SESSION_SOURCE)}, "
            f"{session} != '', {literal(conv.SOURCE_EXPLICIT)}, {literal(conv.SOURCE_AUTO_TRACE)})",
        ),
        ("SessionName", "String", attribute(conv.SESSION_NAME)),
        ("SessionPath", "String", attribute(conv.SESSION_PATH)),
        ("UserId", "String", attribute(conv.USER_ID)),
        ("AgentId", "String", attribute(conv.AGENT_ID)),
        ("AgentName", "String", attribute(conv.AGENT_NAME)),
        ("RunId", "String", attribute(conv.RUN_ID)),
        ("RequestId", "String", attribute(conv.REQUEST_ID)),
        ("Environment", "LowCardinality(String)", attribute(conv.ENVIRONMENT)),
        ("Provider", "LowCardinality(String)", attribute(conv.PROVIDER)),
        ("Operation", "LowCardinality(String)", attribute(conv.OPERATION)),
        (
            "Model",
            "LowCardinality(String)",
            f"if({response_model} != '', {response_model}, {attribute(conv.REQUEST_MODEL)})",
        ),
        ("InputTokens", "UInt64", f"toUInt64OrZero({attribute(conv.INPUT_TOKENS)})"),
        ("OutputTokens", "UInt64", f"toUInt64OrZero({attribute(conv.OUTPUT_TOKENS)})"),
        (
            "CacheReadTokens",
            "UInt64",
            f"toUInt64OrZero({attribute(conv.CACHE_READ_INPUT_TOKENS)})",
        ),
        # The cost the span itself reports (e.g. by the cost processor); NULL when none.
        ("ReportedCostUsd", "Nullable(Float64)", f"toFloat64OrNull({attribute(conv.COST)})"),
        (
            "IsLlmCall",
            "UInt8",
            f"{llm_ops} OR (NOT {agent_ops} AND InputTokens + OutputTokens > 0)",
        ),
        ("IsError", "UInt8", "StatusCode IN ('Error', 'STATUS_CODE_ERROR')"),
    ]


def price_key(model: str, dictionary: str) -> str:
    """The price-table key of a model name: the rule of ``prices.canonical_model``."""
    key = f"replaceRegexpOne(lower({model}), {literal(PROVIDER_PREFIX_RE)}, '')"
    undated = f"replaceRegexpOne({key}, {literal(DATE_SUFFIX_RE)}, '')"
    return (
        f"if(dictHas({literal(dictionary)}, tuple({key})) "
        f"OR NOT dictHas({literal(dictionary)}, tuple({undated})), {key}, {undated})"
    )


def priced_cost(model: str, input_tokens: str, output_tokens: str, cached: str, dictionary: str) -> str:
    """USD for tokens of ``model`` at the current price table: the formula of ``prices.cost_usd``.

    Unknown models cost 0 (``unpriced_models`` lists them).
    """
    key = price_key(model, dictionary)

    def price(attr: str) -> str:
        return f"dictGetOrDefault({literal(dictionary)}, {literal(attr)}, tuple({key}), toFloat64(0))"

    return (
        f"(greatest(toInt64({input_tokens}) - toInt64({cached}), 0) * {price('input_per_mtok')}"
        f" + {cached} * {price('cached_input_per_mtok')}"
        f" + {output_tokens} * {price('output_per_mtok')}) / 1e6"
    )


def is_priced(model: str, dictionary: str) -> str:
    return f"dictHas({literal(dictionary)}, tuple({price_key(model, dictionary)}))"
