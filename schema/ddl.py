"""The DDL of every schema object, rendered for a set of :class:`SchemaOptions`.

Object names derive from ``traces_table_name`` (``otel_traces_trace_id_ts``,
``otel_traces_sessions`` …) except the public views, whose names are the stable interface.
"""

from __future__ import annotations

from sessionlens import conventions as conv
from sessionlens.schema.expressions import (
    attribute,
    derived_columns,
    is_priced,
    literal,
    priced_cost,
)
from sessionlens.schema.options import SchemaOptions

PRICES_TABLE = "model_prices"
PRICES_DICTIONARY = "model_prices_dict"
MIGRATIONS_TABLE = "schema_migrations"
SESSION_LIST = "session_list"
SESSION_VITALS = "session_vitals"
SESSION_DETAIL = "session_detail"
UNPRICED_MODELS = "unpriced_models"
LATENCY_LEVELS = "0.5, 0.95"


class Names:
    """Fully qualified (quoted) names of the objects for one set of options."""

    def __init__(self, o: SchemaOptions) -> None:
        t = o.traces_table_name
        self.traces = o.table(t)
        self.trace_id_ts = o.table(f"{t}_trace_id_ts")
        self.trace_id_ts_mv = o.table(f"{t}_trace_id_ts_mv")
        self.session_id_ts = o.table(f"{t}_session_id_ts")
        self.session_id_ts_mv = o.table(f"{t}_session_id_ts_mv")
        self.sessions = o.table(f"{t}_sessions")
        self.sessions_mv = o.table(f"{t}_sessions_mv")
        self.sessions_merged = o.table(f"{t}_sessions_merged")
        self.prices = o.table(PRICES_TABLE)
        self.migrations = o.table(MIGRATIONS_TABLE)
        self.session_list = o.table(SESSION_LIST)
        self.session_vitals = o.table(SESSION_VITALS)
        self.session_detail = o.table(SESSION_DETAIL)
        self.unpriced_models = o.table(UNPRICED_MODELS)
        # dictGet takes the dictionary name as a string: unquoted database.name
        self.dictionary_ref = f"{o.database}.{PRICES_DICTIONARY}"
        self.dictionary = o.table(PRICES_DICTIONARY)


def create_database(o: SchemaOptions) -> str:
    return f"CREATE DATABASE IF NOT EXISTS `{o.database}`{o.on_cluster}"


def migrations_table(o: SchemaOptions) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {Names(o).migrations}{o.on_cluster} (\n"
        "    version UInt32,\n"
        "    name String,\n"
        "    applied_at DateTime64(3) DEFAULT now64(3)\n"
        f") ENGINE = {o.table_engine.render('Replacing', 'applied_at')}\n"
        "ORDER BY version"
    )


# --- migration 1: prices ------------------------------------------------------------------


def prices_table(o: SchemaOptions) -> list[str]:
    n = Names(o)
    table = (
        f"CREATE TABLE IF NOT EXISTS {n.prices}{o.on_cluster} (\n"
        "    model String,\n"
        "    input_per_mtok Float64,\n"
        "    output_per_mtok Float64,\n"
        "    cached_input_per_mtok Float64,\n"
        "    source String DEFAULT 'user',\n"
        "    updated_at DateTime64(3) DEFAULT now64(3)\n"
        f") ENGINE = {o.table_engine.render('Replacing', 'updated_at')}\n"
        "ORDER BY model"
    )
    # Prices are read at query time through this dictionary (never frozen into stored
    # rows), so an INSERT into model_prices re-prices every view: within LIFETIME, or at
    # once after SYSTEM RELOAD DICTIONARY. The latest row per model wins.
    dictionary = (
        f"CREATE DICTIONARY IF NOT EXISTS {n.dictionary}{o.on_cluster} (\n"
        "    model String,\n"
        "    input_per_mtok Float64,\n"
        "    output_per_mtok Float64,\n"
        "    cached_input_per_mtok Float64\n"
        ")\n"
        "PRIMARY KEY model\n"
        "SOURCE(CLICKHOUSE(QUERY "
        + literal(
            "SELECT m AS model, argMax(i, u) AS input_per_mtok, argMax(o, u) AS output_per_mtok, "
            "argMax(c, u) AS cached_input_per_mtok FROM (SELECT lower(model) AS m, "
            "input_per_mtok AS i, output_per_mtok AS o, cached_input_per_mtok AS c, updated_at AS u "
            f"FROM {n.prices}) GROUP BY m"
        )
        + "))\n"
        "LIFETIME(MIN 30 MAX 60)\n"
        "LAYOUT(COMPLEX_KEY_HASHED())"
    )
    return [table, dictionary]


# --- migration 2: the OTel traces table ---------------------------------------------------


def traces_table(o: SchemaOptions) -> list[str]:
    """otel_traces and its trace-id lookup, column for column the clickhouseexporter's DDL."""
    n = Names(o)
    derived = "".join(
        f"    {name} {type_} MATERIALIZED {expr},\n" for name, type_, expr in derived_columns()
    )
    # The span's own cost wins; otherwise priced at read time (ALIAS), so a price
    # updated later applies to rows already stored.
    cost = priced_cost("Model", "InputTokens", "OutputTokens", "CacheReadTokens", n.dictionary_ref)
    settings = "index_granularity = 8192, ttl_only_drop_parts = 1" + o.dedup_setting
    traces = (
        f"CREATE TABLE IF NOT EXISTS {n.traces}{o.on_cluster} (\n"
        "    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    SpanId String CODEC(ZSTD(1)),\n"
        "    ParentSpanId String CODEC(ZSTD(1)),\n"
        "    TraceState String CODEC(ZSTD(1)),\n"
        "    SpanName LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    SpanKind LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    ServiceName LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),\n"
        "    ScopeName String CODEC(ZSTD(1)),\n"
        "    ScopeVersion String CODEC(ZSTD(1)),\n"
        "    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),\n"
        "    Duration UInt64 CODEC(T64, ZSTD(1)),\n"
        "    StatusCode LowCardinality(String) CODEC(ZSTD(1)),\n"
        "    StatusMessage String CODEC(ZSTD(1)),\n"
        "    Events Nested (\n"
        "        Timestamp DateTime64(9),\n"
        "        Name LowCardinality(String),\n"
        "        Attributes Map(LowCardinality(String), String)\n"
        "    ) CODEC(ZSTD(1)),\n"
        "    Links Nested (\n"
        "        TraceId String,\n"
        "        SpanId String,\n"
        "        TraceState String,\n"
        "        Attributes Map(LowCardinality(String), String)\n"
        "    ) CODEC(ZSTD(1)),\n"
        "    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), "
        "CAST(ResourceAttributes, 'Array(Tuple(String, String))')),\n"
        "    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), "
        "CAST(SpanAttributes, 'Array(Tuple(String, String))')),\n"
        f"{derived}"
        f"    CostUsd Float64 ALIAS ifNull(ReportedCostUsd, if(IsLlmCall, {cost}, 0)),\n"
        "    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,\n"
        "    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,\n"
        "    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,\n"
        "    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,\n"
        # session_detail finds a session's granules inside its time range with this
        "    INDEX idx_session_id SessionId TYPE bloom_filter(0.001) GRANULARITY 1\n"
        f") ENGINE = {o.table_engine.render()}\n"
        "PARTITION BY toDate(Timestamp)\n"
        "PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))\n"
        "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)\n"
        f"{o.ttl_clause('Timestamp')}"
        f"SETTINGS {settings}"
    )
    trace_id_ts = (
        f"CREATE TABLE IF NOT EXISTS {n.trace_id_ts}{o.on_cluster} (\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),\n"
        "    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))\n"
        f") ENGINE = {o.table_engine.render()}\n"
        "PARTITION BY toStartOfWeek(Start)\n"
        "ORDER BY (TraceId)\n"
        f"{o.ttl_clause('Start')}"
        "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
    )
    trace_id_ts_mv = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {n.trace_id_ts_mv}{o.on_cluster}\n"
        f"TO {n.trace_id_ts}\n"
        "AS SELECT\n"
        "    TraceId,\n"
        "    min(Timestamp) AS Start,\n"
        "    max(Timestamp) AS End\n"
        f"FROM {n.traces}\n"
        "WHERE TraceId != ''\n"
        "GROUP BY TraceId"
    )
    return [traces, trace_id_ts, trace_id_ts_mv]


# --- migration 3: sessions ----------------------------------------------------------------


def _latest_nonempty(column: str) -> str:
    """argMax state of a value that ignores empty strings (they sort before any real time)."""
    return f"argMaxState({column}, if({column} != '', Timestamp, toDateTime64(0, 9)))"


def session_tables(o: SchemaOptions) -> list[str]:
    """The session rollup (insert-time MV into an aggregating table) and the id→time lookup."""
    n = Names(o)
    end = "addNanoseconds(Timestamp, Duration)"
    session_id_ts = (
        f"CREATE TABLE IF NOT EXISTS {n.session_id_ts}{o.on_cluster} (\n"
        "    SessionId String CODEC(ZSTD(1)),\n"
        "    Start SimpleAggregateFunction(min, DateTime64(9)),\n"
        "    End SimpleAggregateFunction(max, DateTime64(9))\n"
        f") ENGINE = {o.table_engine.render('Aggregating')}\n"
        "ORDER BY SessionId\n"
        f"{o.ttl_clause('End')}"
        "SETTINGS index_granularity = 8192"
    )
    session_id_ts_mv = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {n.session_id_ts_mv}{o.on_cluster}\n"
        f"TO {n.session_id_ts}\n"
        "AS SELECT SessionId, min(Timestamp) AS Start, max(Timestamp) AS End\n"
        f"FROM {n.traces}\n"
        "GROUP BY SessionId"
    )
    # One row per (project, session) per insert block; every read re-aggregates.
    # Token, cost, call and latency figures count LLM calls only: agent and tool spans
    # wrap calls that are already counted.
    rollup = (
        f"CREATE TABLE IF NOT EXISTS {n.sessions}{o.on_cluster} (\n"
        "    Project LowCardinality(String),\n"
        "    SessionId String,\n"
        "    FirstSeen SimpleAggregateFunction(min, DateTime64(9)),\n"
        "    LastSeen SimpleAggregateFunction(max, DateTime64(9)),\n"
        "    NameState AggregateFunction(argMax, String, DateTime64(9)),\n"
        "    SourceState AggregateFunction(argMax, LowCardinality(String), DateTime64(9)),\n"
        "    UserState AggregateFunction(argMax, String, DateTime64(9)),\n"
        "    EnvironmentState AggregateFunction(argMax, LowCardinality(String), DateTime64(9)),\n"
        "    ServiceState AggregateFunction(argMin, LowCardinality(String), DateTime64(9)),\n"
        "    Traces AggregateFunction(uniqExact, String),\n"
        "    Runs AggregateFunction(uniqExact, String),\n"
        "    Agents SimpleAggregateFunction(groupUniqArrayArray, Array(String)),\n"
        "    Spans SimpleAggregateFunction(sum, UInt64),\n"
        "    Errors SimpleAggregateFunction(sum, UInt64),\n"
        "    LlmCalls SimpleAggregateFunction(sum, UInt64),\n"
        "    LlmErrors SimpleAggregateFunction(sum, UInt64),\n"
        "    InputTokensSum SimpleAggregateFunction(sum, UInt64),\n"
        "    OutputTokensSum SimpleAggregateFunction(sum, UInt64),\n"
        "    CacheReadTokensSum SimpleAggregateFunction(sum, UInt64),\n"
        "    ReportedCostSum SimpleAggregateFunction(sum, Float64),\n"
        # model -> LLM calls (all of them: the session's models, unpriced_models)
        "    ModelCalls SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64))),\n"
        # model -> (input, cache read, output) tokens of LLM calls that report no cost of
        # their own: priced at read time with the current price table
        "    UnpricedTokens SimpleAggregateFunction(sumMap, "
        "Tuple(Array(String), Array(UInt64), Array(UInt64), Array(UInt64))),\n"
        "    LatencySumMs SimpleAggregateFunction(sum, Float64),\n"
        f"    LatencyMs AggregateFunction(quantiles({LATENCY_LEVELS}), Float64)\n"
        f") ENGINE = {o.table_engine.render('Aggregating')}\n"
        "ORDER BY (Project, SessionId)\n"
        f"{o.ttl_clause('LastSeen')}"
        # a replayed insert must not count twice in the rollup either
        f"SETTINGS index_granularity = 8192{o.dedup_setting}"
    )
    llm = "IsLlmCall"
    unpriced = f"{llm} AND ReportedCostUsd IS NULL AND Model != ''"
    agent = "if(AgentId != '', AgentId, AgentName)"
    rollup_mv = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {n.sessions_mv}{o.on_cluster}\n"
        f"TO {n.sessions}\n"
        "AS SELECT\n"
        "    Project,\n"
        "    SessionId,\n"
        "    min(Timestamp) AS FirstSeen,\n"
        f"    max({end}) AS LastSeen,\n"
        f"    {_latest_nonempty('SessionName')} AS NameState,\n"
        f"    {_latest_nonempty('SessionSource')} AS SourceState,\n"
        f"    {_latest_nonempty('UserId')} AS UserState,\n"
        f"    {_latest_nonempty('Environment')} AS EnvironmentState,\n"
        "    argMinState(ServiceName, Timestamp) AS ServiceState,\n"
        "    uniqExactState(TraceId) AS Traces,\n"
        "    uniqExactStateIf(RunId, RunId != '') AS Runs,\n"
        f"    groupUniqArrayIf({agent}, {agent} != '') AS Agents,\n"
        "    count() AS Spans,\n"
        "    countIf(IsError) AS Errors,\n"
        f"    countIf({llm}) AS LlmCalls,\n"
        f"    countIf({llm} AND IsError) AS LlmErrors,\n"
        f"    sumIf(InputTokens, {llm}) AS InputTokensSum,\n"
        f"    sumIf(OutputTokens, {llm}) AS OutputTokensSum,\n"
        f"    sumIf(CacheReadTokens, {llm}) AS CacheReadTokensSum,\n"
        f"    sumIf(ifNull(ReportedCostUsd, 0), {llm}) AS ReportedCostSum,\n"
        f"    sumMapIf(tuple([toString(Model)], [toUInt64(1)]), {llm} AND Model != '') AS ModelCalls,\n"
        f"    sumMapIf(tuple([toString(Model)], [InputTokens], [CacheReadTokens], [OutputTokens]), "
        f"{unpriced}) AS UnpricedTokens,\n"
        f"    sumIf(Duration / 1e6, {llm}) AS LatencySumMs,\n"
        f"    quantilesStateIf({LATENCY_LEVELS})(Duration / 1e6, {llm}) AS LatencyMs\n"
        f"FROM {n.traces}\n"
        "GROUP BY Project, SessionId"
    )
    return [session_id_ts, session_id_ts_mv, rollup, rollup_mv]


def session_views(o: SchemaOptions) -> list[str]:
    """The public views (and the one private view both session_list and vitals read)."""
    n = Names(o)
    d = n.dictionary_ref
    cost = priced_cost("m", "i", "o", "c", d)
    # FINAL re-aggregates the rollup by its key (Project, SessionId) with the engine's own
    # merge of every state, and passes through untouched the rows of sessions with no
    # unmerged duplicates. Unlike a GROUP BY, the expensive finalizations below are plain
    # functions of one row, which ClickHouse evaluates after ORDER BY … LIMIT: a page of
    # 50 sessions finalizes 50 rows, not every session.
    merged = (
        f"CREATE VIEW IF NOT EXISTS {n.sessions_merged}{o.on_cluster} AS\n"
        "SELECT\n"
        "    SessionId AS session_id,\n"
        "    finalizeAggregation(NameState) AS session_name,\n"
        "    finalizeAggregation(SourceState) AS source,\n"
        "    Project AS project,\n"
        "    finalizeAggregation(UserState) AS user_id,\n"
        "    finalizeAggregation(EnvironmentState) AS environment,\n"
        "    finalizeAggregation(ServiceState) AS service_name,\n"
        "    FirstSeen AS first_seen,\n"
        "    LastSeen AS last_seen,\n"
        "    (toUnixTimestamp64Nano(LastSeen) - toUnixTimestamp64Nano(FirstSeen)) / 1e9 AS duration_s,\n"
        f"    if(LastSeen >= now64(9) - toIntervalSecond({int(o.inactivity_timeout)}), "
        "'active', 'completed') AS status,\n"
        "    finalizeAggregation(Traces) AS trace_count,\n"
        "    LlmCalls AS llm_calls,\n"
        "    finalizeAggregation(Runs) AS runs,\n"
        "    arraySort(Agents) AS agents,\n"
        "    arraySort(ModelCalls.1) AS models,\n"
        "    InputTokensSum AS input_tokens,\n"
        "    OutputTokensSum AS output_tokens,\n"
        "    ReportedCostSum + arraySum((m, i, c, o) -> "
        f"{cost}, UnpricedTokens.1, UnpricedTokens.2, UnpricedTokens.3, UnpricedTokens.4) AS cost_usd,\n"
        "    Errors AS errors,\n"
        "    LlmErrors AS llm_errors,\n"
        "    if(LlmCalls > 0, (LlmCalls - LlmErrors) / LlmCalls, "
        "if(Spans > 0, (Spans - Errors) / Spans, 1)) AS success_rate,\n"
        "    if(LlmCalls > 0, LatencySumMs / LlmCalls, 0) AS avg_latency_ms,\n"
        "    LatencyMs AS latency_state,\n"
        "    if(LlmCalls > 0, finalizeAggregation(LatencyMs)[2], 0) AS p95_latency_ms\n"
        f"FROM {n.sessions} FINAL"
    )
    list_columns = (
        "session_id, session_name, source, project, user_id, environment, service_name, "
        "first_seen, last_seen, duration_s, status, trace_count, llm_calls, runs, agents, "
        "models, input_tokens, output_tokens, cost_usd, errors, success_rate, "
        "avg_latency_ms, p95_latency_ms"
    )
    session_list = (
        f"CREATE VIEW IF NOT EXISTS {n.session_list}{o.on_cluster} AS\n"
        f"SELECT {list_columns}\nFROM {n.sessions_merged}"
    )

    def param(name: str) -> str:
        return f"{{{name}:String}}"

    def optional(column_test: str, name: str) -> str:
        return f"({param(name)} = '' OR {column_test})"

    since = f"parseDateTime64BestEffortOrNull({param('since')}, 9)"
    until = f"parseDateTime64BestEffortOrNull({param('until')}, 9)"
    filters = " AND ".join(
        [
            f"({param('since')} = '' OR last_seen >= {since})",
            f"({param('until')} = '' OR first_seen <= {until})",
            optional(f"project = {param('project')}", "project"),
            optional(f"environment = {param('environment')}", "environment"),
            optional(f"service_name = {param('service')}", "service"),
            optional(f"has(agents, {param('agent')})", "agent"),
            optional(f"user_id = {param('user')}", "user"),
        ]
    )
    # Sessions that overlap [since, until] count whole (their calls, cost, latency).
    vitals = (
        f"CREATE VIEW IF NOT EXISTS {n.session_vitals}{o.on_cluster} AS\n"
        "SELECT\n"
        "    count() AS sessions,\n"
        "    countIf(status = 'active') AS active_sessions,\n"
        "    uniqExactIf(user_id, user_id != '') AS users,\n"
        "    sum(llm_calls) AS llm_calls,\n"
        "    if(sessions > 0, llm_calls / sessions, 0) AS avg_calls_per_session,\n"
        "    sum(cost_usd) AS total_cost_usd,\n"
        "    if(sessions > 0, total_cost_usd / sessions, 0) AS avg_cost_per_session,\n"
        "    if(sessions > 0, quantile(0.5)(duration_s), 0) AS p50_session_duration_s,\n"
        "    if(sessions > 0, quantile(0.95)(duration_s), 0) AS p95_session_duration_s,\n"
        f"    if(llm_calls > 0, quantilesMerge({LATENCY_LEVELS})(latency_state)[1], 0) AS p50_call_latency_ms,\n"
        f"    if(llm_calls > 0, quantilesMerge({LATENCY_LEVELS})(latency_state)[2], 0) AS p95_call_latency_ms,\n"
        "    if(llm_calls > 0, sum(llm_errors) / llm_calls, 0) AS error_rate,\n"
        "    sum(input_tokens) + sum(output_tokens) AS total_tokens\n"
        f"FROM {n.sessions_merged}\n"
        f"WHERE {filters}"
    )
    sid = param("session_id")
    reasons = attribute(conv.FINISH_REASONS)
    detail = (
        f"CREATE VIEW IF NOT EXISTS {n.session_detail}{o.on_cluster} AS\n"
        "SELECT\n"
        "    Timestamp AS timestamp,\n"
        "    TraceId AS trace_id,\n"
        "    SpanId AS span_id,\n"
        "    ParentSpanId AS parent_span_id,\n"
        "    SpanName AS span_name,\n"
        "    SessionPath AS path,\n"
        "    RunId AS run_id,\n"
        "    AgentId AS agent_id,\n"
        "    RequestId AS request_id,\n"
        "    Provider AS provider,\n"
        "    Model AS model,\n"
        "    Operation AS operation,\n"
        "    InputTokens AS input_tokens,\n"
        "    OutputTokens AS output_tokens,\n"
        "    CostUsd AS cost_usd,\n"
        "    Duration / 1e6 AS duration_ms,\n"
        # the attribute is in seconds, as the GenAI time-to-first-token metric
        f"    toFloat64OrNull({attribute(conv.TIME_TO_FIRST_CHUNK)}) * 1000 AS time_to_first_chunk_ms,\n"
        "    StatusCode AS status,\n"
        "    StatusMessage AS status_message,\n"
        # an array attribute arrives JSON-encoded from the clickhouseexporter
        f"    if(startsWith({reasons}, '['), JSONExtract({reasons}, 'Array(String)'), "
        f"if({reasons} = '', [], [{reasons}])) AS finish_reasons,\n"
        f"    {attribute(conv.INPUT_MESSAGES)} AS input_messages,\n"
        f"    {attribute(conv.OUTPUT_MESSAGES)} AS output_messages,\n"
        "    Project AS project\n"
        f"FROM {n.traces}\n"
        # the lookup table bounds the time range, so only the session's days (and, with
        # the SessionId bloom filter, its granules) are read
        f"WHERE Timestamp >= (SELECT min(Start) FROM {n.session_id_ts} WHERE SessionId = {sid})\n"
        f"  AND Timestamp <= (SELECT max(End) FROM {n.session_id_ts} WHERE SessionId = {sid})\n"
        f"  AND SessionId = {sid}\n"
        "ORDER BY Timestamp, SpanId"
    )
    unpriced = (
        f"CREATE VIEW IF NOT EXISTS {n.unpriced_models}{o.on_cluster} AS\n"
        "SELECT model, sum(calls) AS calls\n"
        f"FROM {n.sessions}\n"
        "ARRAY JOIN ModelCalls.1 AS model, ModelCalls.2 AS calls\n"
        f"WHERE NOT {is_priced('model', d)}\n"
        "GROUP BY model\n"
        "ORDER BY calls DESC, model"
    )
    return [merged, session_list, vitals, detail, unpriced]
