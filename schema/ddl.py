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
SESSION_LIST_PAGE = "session_list_page"
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
        self.sessions = o.table(f"{t}_sessions")
        self.sessions_mv = o.table(f"{t}_sessions_mv")
        self.session_spans = o.table(f"{t}_session_spans")
        self.session_spans_mv = o.table(f"{t}_session_spans_mv")
        self.prices = o.table(PRICES_TABLE)
        self.migrations = o.table(MIGRATIONS_TABLE)
        self.session_list = o.table(SESSION_LIST)
        self.session_list_page = o.table(SESSION_LIST_PAGE)
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
    """The insert-time rollups every session view reads (materialized views into tables).

    ``…_sessions``: one row per (project, session) and insert block, with per-model LLM
    calls and the tokens priced at read time;
    ``…_session_spans``: the columns of ``session_detail``, ordered by session.
    """
    n = Names(o)
    end = "addNanoseconds(Timestamp, Duration)"
    dedup = o.dedup_setting  # a replayed insert must not count twice in any rollup
    # Small granules: a page of 50 sessions reads 50 × 256 rows of the bulky states, not
    # the whole table (the filters and the sort read only the light columns).
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
        "    ReportedCostSum SimpleAggregateFunction(sum, Float64),\n"
        "    LatencySumMs SimpleAggregateFunction(sum, Float64),\n"
        f"    LatencyMs AggregateFunction(quantiles({LATENCY_LEVELS}), Float32),\n"
        # per model: (models, calls, then the tokens of calls that report no cost of their
        # own, priced at read time with the current table); calls >= 1 keep a model listed
        "    Models SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64), "
        "Array(UInt64), Array(UInt64), Array(UInt64)))\n"
        f") ENGINE = {o.table_engine.render('Aggregating')}\n"
        "ORDER BY (Project, SessionId)\n"
        f"{o.ttl_clause('LastSeen')}"
        f"SETTINGS index_granularity = 256{dedup}"
    )
    # Token, cost, call and latency figures count LLM calls only: agent and tool spans
    # wrap calls that are already counted.
    llm = "IsLlmCall"

    def unpriced(tokens: str) -> str:
        return f"if(ReportedCostUsd IS NULL, {tokens}, 0)"

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
        f"    sumIf(ifNull(ReportedCostUsd, 0), {llm}) AS ReportedCostSum,\n"
        f"    sumIf(Duration / 1e6, {llm}) AS LatencySumMs,\n"
        # Float32 ms: half the bytes to merge, exact to well under a microsecond
        f"    quantilesStateIf({LATENCY_LEVELS})(toFloat32(Duration / 1e6), {llm}) AS LatencyMs,\n"
        f"    sumMapIf(([toString(Model)], [toUInt64(1)], [{unpriced('InputTokens')}], "
        f"[{unpriced('CacheReadTokens')}], [{unpriced('OutputTokens')}]), {llm} AND Model != '') AS Models\n"
        f"FROM {n.traces}\n"
        "GROUP BY Project, SessionId"
    )
    # otel_traces is ordered for trace search (service, span name, time): a session's
    # spans sit in many granules of wide attribute maps. This narrow copy, ordered by
    # session, makes session_detail read one small range.
    spans = (
        f"CREATE TABLE IF NOT EXISTS {n.session_spans}{o.on_cluster} (\n"
        "    Project LowCardinality(String),\n"
        "    SessionId String CODEC(ZSTD(1)),\n"
        "    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),\n"
        "    TraceId String CODEC(ZSTD(1)),\n"
        "    SpanId String CODEC(ZSTD(1)),\n"
        "    ParentSpanId String CODEC(ZSTD(1)),\n"
        "    SpanName LowCardinality(String),\n"
        "    SessionPath String CODEC(ZSTD(1)),\n"
        "    RunId String CODEC(ZSTD(1)),\n"
        "    AgentId String CODEC(ZSTD(1)),\n"
        "    RequestId String CODEC(ZSTD(1)),\n"
        "    Provider LowCardinality(String),\n"
        "    Model LowCardinality(String),\n"
        "    Operation LowCardinality(String),\n"
        "    IsLlmCall UInt8,\n"
        "    InputTokens UInt64,\n"
        "    OutputTokens UInt64,\n"
        "    CacheReadTokens UInt64,\n"
        "    ReportedCostUsd Nullable(Float64),\n"
        "    Duration UInt64 CODEC(T64, ZSTD(1)),\n"
        "    TimeToFirstChunkMs Nullable(Float64),\n"
        "    StatusCode LowCardinality(String),\n"
        "    StatusMessage String CODEC(ZSTD(1)),\n"
        # as the attribute holds it: parsed by session_detail, for its few rows only
        "    FinishReasons String CODEC(ZSTD(1)),\n"
        "    InputMessages String CODEC(ZSTD(1)),\n"
        "    OutputMessages String CODEC(ZSTD(1))\n"
        f") ENGINE = {o.table_engine.render()}\n"
        "PARTITION BY toStartOfWeek(Timestamp)\n"
        "ORDER BY (SessionId, Timestamp, SpanId)\n"
        f"{o.ttl_clause('Timestamp')}"
        f"SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1{dedup}"
    )
    spans_mv = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {n.session_spans_mv}{o.on_cluster}\n"
        f"TO {n.session_spans}\n"
        "AS SELECT\n"
        "    Project, SessionId, Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SessionPath,\n"
        "    RunId, AgentId, RequestId, Provider, Model, Operation, IsLlmCall, InputTokens,\n"
        "    OutputTokens, CacheReadTokens, ReportedCostUsd, Duration, StatusCode, StatusMessage,\n"
        # the attribute is in seconds, as the GenAI time-to-first-token metric
        f"    toFloat64OrNull({attribute(conv.TIME_TO_FIRST_CHUNK)}) * 1000 AS TimeToFirstChunkMs,\n"
        f"    {attribute(conv.FINISH_REASONS)} AS FinishReasons,\n"
        f"    {attribute(conv.INPUT_MESSAGES)} AS InputMessages,\n"
        f"    {attribute(conv.OUTPUT_MESSAGES)} AS OutputMessages\n"
        f"FROM {n.traces}"
    )
    return [rollup, rollup_mv, spans, spans_mv]


# --- migration 4: views -------------------------------------------------------------------


def _param(name: str, type_: str = "String") -> str:
    return f"{{{name}:{type_}}}"


def _optional(name: str, test: str) -> str:
    """``test`` when the parameter ``name`` is given; an empty string means no filter."""
    return f"({_param(name)} = '' OR {test})"


def _status(o: SchemaOptions, last_seen: str) -> str:
    return (
        f"if({last_seen} >= now64(9) - toIntervalSecond({int(o.inactivity_timeout)}), "
        "'active', 'completed')"
    )


_DURATION_S = "(toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9"
_KEY = "(Project, SessionId)"
# A set of (nearly) all sessions is a fast hash filter, but slow to turn into primary-key
# ranges: the vitals' IN filters skip the index (a page's 50 keys do use it).
_NO_KEY_INDEX = "SETTINGS use_index_for_in_with_subqueries = 0"

LIST_COLUMNS = (
    "session_id, session_name, source, project, user_id, environment, service_name, "
    "first_seen, last_seen, duration_s, status, trace_count, llm_calls, runs, agents, "
    "models, input_tokens, output_tokens, cost_usd, errors, success_rate, "
    "avg_latency_ms, p95_latency_ms"
)


def _models_cost(models: str, dictionary: str) -> str:
    """USD of a ``Models`` tuple (as summed by ``sumMap``) at the current price table."""
    cost = priced_cost("m", "i", "o", "c", dictionary)
    return (
        f"arraySum(arrayMap((m, i, c, o) -> {cost}, "
        f"{models}.1, {models}.3, {models}.4, {models}.5))"
    )


def _session_rows(o: SchemaOptions, keys: str) -> str:
    """Every session_list column of the sessions whose key is in ``keys`` (``''``: all).

    Reads re-aggregate the rollup by session (an MV sees one insert block at a time);
    ``keys`` restricts it by its primary key before that.
    """
    n = Names(o)
    where = f"WHERE {_KEY} IN ({keys})\n" if keys else ""
    return (
        "SELECT\n"
        "    SessionId AS session_id, session_name, source, Project AS project, user_id,\n"
        "    environment, service_name, first_seen, last_seen,\n"
        f"    {_DURATION_S} AS duration_s,\n"
        f"    {_status(o, 'last_seen')} AS status,\n"
        "    trace_count, llm_calls, runs, agents, per_model.1 AS models, input_tokens,\n"
        f"    output_tokens, reported_cost + {_models_cost('per_model', n.dictionary_ref)} AS cost_usd,\n"
        "    errors,\n"
        "    if(llm_calls > 0, (llm_calls - llm_errors) / llm_calls,\n"
        "       if(spans > 0, (spans - errors) / spans, 1)) AS success_rate,\n"
        "    if(llm_calls > 0, latency_sum_ms / llm_calls, 0) AS avg_latency_ms,\n"
        "    if(llm_calls > 0, toFloat64(latency_ms[2]), 0) AS p95_latency_ms\n"
        "FROM (\n"
        "    SELECT Project, SessionId,\n"
        "        argMaxMerge(NameState) AS session_name, argMaxMerge(SourceState) AS source,\n"
        "        argMaxMerge(UserState) AS user_id, argMaxMerge(EnvironmentState) AS environment,\n"
        "        argMinMerge(ServiceState) AS service_name,\n"
        "        min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,\n"
        "        uniqExactMerge(Traces) AS trace_count, uniqExactMerge(Runs) AS runs,\n"
        "        arraySort(groupUniqArrayArray(Agents)) AS agents,\n"
        "        sum(Spans) AS spans, sum(Errors) AS errors, sum(LlmCalls) AS llm_calls,\n"
        "        sum(LlmErrors) AS llm_errors, sum(InputTokensSum) AS input_tokens,\n"
        "        sum(OutputTokensSum) AS output_tokens, sum(ReportedCostSum) AS reported_cost,\n"
        "        sum(LatencySumMs) AS latency_sum_ms,\n"
        f"        quantilesMerge({LATENCY_LEVELS})(LatencyMs) AS latency_ms,\n"
        "        sumMap(Models) AS per_model\n"
        f"    FROM {n.sessions}\n"
        f"    {where}"
        "    GROUP BY Project, SessionId\n"
        ")"
    )


def session_views(o: SchemaOptions) -> list[str]:
    """The public views: session_list, session_list_page, session_vitals, session_detail,
    unpriced_models."""
    n = Names(o)
    d = n.dictionary_ref
    session_list = (
        f"CREATE VIEW IF NOT EXISTS {n.session_list}{o.on_cluster} AS\n"
        f"SELECT {LIST_COLUMNS}\nFROM (\n{_session_rows(o, '')}\n)"
    )
    # A page is chosen on the light columns of the rollup (times, user, environment);
    # only then are the bulky states of its sessions (traces, latency sample, models,
    # prices) read, through the primary key.
    page_filters = " AND ".join([
        _optional("project", f"Project = {_param('project')}"),
        _optional("user", f"argMaxMerge(UserState) = {_param('user')}"),
        _optional("environment", f"argMaxMerge(EnvironmentState) = {_param('environment')}"),
        _optional("status", f"{_status(o, 'max(LastSeen)')} = {_param('status')}"),
        _optional("before", f"max(LastSeen) < parseDateTime64BestEffortOrNull({_param('before')}, 9)"),
    ])
    page_keys = (
        f"SELECT Project, SessionId FROM {n.sessions}\n"
        "GROUP BY Project, SessionId\n"
        f"HAVING {page_filters}\n"
        f"ORDER BY max(LastSeen) DESC, SessionId DESC\nLIMIT {_param('limit', 'UInt32')}"
    )
    session_list_page = (
        f"CREATE VIEW IF NOT EXISTS {n.session_list_page}{o.on_cluster} AS\n"
        f"SELECT {LIST_COLUMNS}\nFROM (\n{_session_rows(o, page_keys)}\n)\n"
        "ORDER BY last_seen DESC, session_id DESC"
    )
    # A filter's state is merged only when the filter is given (-If on the parameter):
    # merging every session's environment, service and agents costs more than the rest.
    def merged(function: str, state: str, name: str) -> str:
        return f"{function}If({state}, {_param(name)} != '')"

    vitals_filters = " AND ".join([
        _optional("since", f"max(LastSeen) >= parseDateTime64BestEffortOrNull({_param('since')}, 9)"),
        _optional("until", f"min(FirstSeen) <= parseDateTime64BestEffortOrNull({_param('until')}, 9)"),
        _optional("project", f"Project = {_param('project')}"),
        _optional("environment",
                  f"{merged('argMaxMerge', 'EnvironmentState', 'environment')} = {_param('environment')}"),
        _optional("service", f"{merged('argMinMerge', 'ServiceState', 'service')} = {_param('service')}"),
        _optional("agent", f"has({merged('groupUniqArrayArray', 'Agents', 'agent')}, {_param('agent')})"),
        _optional("user", f"{merged('argMaxMerge', 'UserState', 'user')} = {_param('user')}"),
    ])
    # Sessions that overlap [since, until] count whole (their calls, cost, latency).
    # Per-session figures come from one light GROUP BY; the latency sample and the
    # per-model tokens are merged across the selected sessions without grouping by session
    # (the key selection re-runs for each: ~30 ms CPU at 100k sessions).
    vitals = (
        f"CREATE VIEW IF NOT EXISTS {n.session_vitals}{o.on_cluster} AS\n"
        # the keys alone, for the IN filters: a CTE is inlined where used, and the keys
        # without the per-session figures take about half the time
        "WITH selected_keys AS (\n"
        f"    SELECT Project, SessionId FROM {n.sessions}\n"
        "    GROUP BY Project, SessionId\n"
        f"    HAVING {vitals_filters}\n"
        "),\n"
        "selected AS (\n"
        "    SELECT Project, SessionId, min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,\n"
        "        argMaxMerge(UserState) AS user_id, sum(LlmCalls) AS calls,\n"
        "        sum(LlmErrors) AS call_errors, sum(ReportedCostSum) AS reported_cost,\n"
        "        sum(InputTokensSum) + sum(OutputTokensSum) AS tokens\n"
        f"    FROM {n.sessions}\n"
        "    GROUP BY Project, SessionId\n"
        f"    HAVING {vitals_filters}\n"
        "),\n"
        f"(SELECT quantilesMerge({LATENCY_LEVELS})(LatencyMs) FROM {n.sessions}\n"
        f"    WHERE {_KEY} IN selected_keys {_NO_KEY_INDEX}) AS call_latency_ms,\n"
        # the shape of sumMap(Models), but summed by model after an ARRAY JOIN: sumMap
        # over 100k sessions costs ~5x more
        "(SELECT (groupArray(m), groupArray(n), groupArray(i), groupArray(c), groupArray(o))\n"
        "    FROM (SELECT m, sum(n) AS n, sum(i) AS i, sum(c) AS c, sum(o) AS o\n"
        f"        FROM (SELECT Models FROM {n.sessions} WHERE {_KEY} IN selected_keys)\n"
        "        ARRAY JOIN Models.1 AS m, Models.2 AS n, Models.3 AS i, Models.4 AS c, Models.5 AS o\n"
        f"        GROUP BY m) {_NO_KEY_INDEX}) AS per_model\n"
        "SELECT\n"
        "    count() AS sessions,\n"
        f"    countIf({_status(o, 'last_seen')} = 'active') AS active_sessions,\n"
        "    uniqExactIf(user_id, user_id != '') AS users,\n"
        "    sum(calls) AS llm_calls,\n"
        "    if(sessions > 0, llm_calls / sessions, 0) AS avg_calls_per_session,\n"
        f"    sum(reported_cost) + {_models_cost('per_model', d)} AS total_cost_usd,\n"
        "    if(sessions > 0, total_cost_usd / sessions, 0) AS avg_cost_per_session,\n"
        f"    if(sessions > 0, quantile(0.5)({_DURATION_S}), 0) AS p50_session_duration_s,\n"
        f"    if(sessions > 0, quantile(0.95)({_DURATION_S}), 0) AS p95_session_duration_s,\n"
        "    if(llm_calls > 0, toFloat64(call_latency_ms[1]), 0) AS p50_call_latency_ms,\n"
        "    if(llm_calls > 0, toFloat64(call_latency_ms[2]), 0) AS p95_call_latency_ms,\n"
        "    if(llm_calls > 0, sum(call_errors) / llm_calls, 0) AS error_rate,\n"
        "    sum(tokens) AS total_tokens\n"
        "FROM selected"
    )
    cost = priced_cost("Model", "InputTokens", "OutputTokens", "CacheReadTokens", d)
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
        # as otel_traces.CostUsd: the span's own cost wins, priced at read time otherwise
        f"    ifNull(ReportedCostUsd, if(IsLlmCall, {cost}, 0)) AS cost_usd,\n"
        "    Duration / 1e6 AS duration_ms,\n"
        "    TimeToFirstChunkMs AS time_to_first_chunk_ms,\n"
        "    StatusCode AS status,\n"
        "    StatusMessage AS status_message,\n"
        # an array attribute arrives JSON-encoded from the clickhouseexporter
        "    if(startsWith(FinishReasons, '['), JSONExtract(FinishReasons, 'Array(String)'),\n"
        "       if(FinishReasons = '', [], [FinishReasons])) AS finish_reasons,\n"
        "    InputMessages AS input_messages,\n"
        "    OutputMessages AS output_messages,\n"
        "    Project AS project\n"
        f"FROM {n.session_spans}\n"
        f"WHERE SessionId = {_param('session_id')}\n"
        "ORDER BY Timestamp, SpanId"
    )
    unpriced = (
        f"CREATE VIEW IF NOT EXISTS {n.unpriced_models}{o.on_cluster} AS\n"
        "SELECT model, calls FROM (\n"
        "    SELECT m.1 AS model, m.2 AS calls\n"
        f"    FROM (SELECT sumMap(Models) AS t FROM {n.sessions})\n"
        "    ARRAY JOIN arrayZip(t.1, t.2) AS m)\n"
        f"WHERE NOT {is_priced('model', d)}\n"
        "ORDER BY calls DESC, model"
    )
    return [session_list, session_list_page, vitals, detail, unpriced]
