-- session rollups: per session, per session and model, spans by session

-- Frozen: released, never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
-- One row per (project, session) and insert block; reads re-aggregate by session.
-- Small granules: a page of 50 sessions reads 50 x 256 rows of the bulky states, not
-- the whole table (the filters and the sort read only the light columns).
CREATE TABLE IF NOT EXISTS `${database}`.`${traces_table}_sessions`${on_cluster} (
    Project LowCardinality(String),
    SessionId String,
    FirstSeen SimpleAggregateFunction(min, DateTime64(9)),
    LastSeen SimpleAggregateFunction(max, DateTime64(9)),
    NameState AggregateFunction(argMax, String, DateTime64(9)),
    SourceState AggregateFunction(argMax, LowCardinality(String), DateTime64(9)),
    UserState AggregateFunction(argMax, String, DateTime64(9)),
    EnvironmentState AggregateFunction(argMax, LowCardinality(String), DateTime64(9)),
    ServiceState AggregateFunction(argMin, LowCardinality(String), DateTime64(9)),
    Traces AggregateFunction(uniqExact, String),
    Runs AggregateFunction(uniqExact, String),
    Agents SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Spans SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    LlmCalls SimpleAggregateFunction(sum, UInt64),
    LlmErrors SimpleAggregateFunction(sum, UInt64),
    InputTokensSum SimpleAggregateFunction(sum, UInt64),
    OutputTokensSum SimpleAggregateFunction(sum, UInt64),
    ReportedCostSum SimpleAggregateFunction(sum, Float64),
    LatencySumMs SimpleAggregateFunction(sum, Float64),
    LatencyMs AggregateFunction(quantiles(0.5, 0.95), Float32),
    -- per model: (models, calls, then the tokens of calls that report no cost of their
    -- own, priced at read time with the current table); calls >= 1 keep a model listed
    Models SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64), Array(UInt64), Array(UInt64), Array(UInt64)))
) ENGINE = ${engine:AggregatingMergeTree}
ORDER BY (Project, SessionId)
${ttl:LastSeen}
SETTINGS index_granularity = 256${dedup_setting};

-- Token, cost, call and latency figures count LLM calls only: agent and tool spans
-- wrap calls that are already counted.
CREATE MATERIALIZED VIEW IF NOT EXISTS `${database}`.`${traces_table}_sessions_mv`${on_cluster}
TO `${database}`.`${traces_table}_sessions`
AS SELECT
    Project,
    SessionId,
    min(Timestamp) AS FirstSeen,
    max(addNanoseconds(Timestamp, Duration)) AS LastSeen,
    argMaxState(SessionName, if(SessionName != '', Timestamp, toDateTime64(0, 9))) AS NameState,
    argMaxState(SessionSource, if(SessionSource != '', Timestamp, toDateTime64(0, 9))) AS SourceState,
    argMaxState(UserId, if(UserId != '', Timestamp, toDateTime64(0, 9))) AS UserState,
    argMaxState(Environment, if(Environment != '', Timestamp, toDateTime64(0, 9))) AS EnvironmentState,
    argMinState(ServiceName, Timestamp) AS ServiceState,
    uniqExactState(TraceId) AS Traces,
    uniqExactStateIf(RunId, RunId != '') AS Runs,
    groupUniqArrayIf(if(AgentId != '', AgentId, AgentName), if(AgentId != '', AgentId, AgentName) != '') AS Agents,
    count() AS Spans,
    countIf(IsError) AS Errors,
    countIf(IsLlmCall) AS LlmCalls,
    countIf(IsLlmCall AND IsError) AS LlmErrors,
    sumIf(InputTokens, IsLlmCall) AS InputTokensSum,
    sumIf(OutputTokens, IsLlmCall) AS OutputTokensSum,
    sumIf(ifNull(ReportedCostUsd, 0), IsLlmCall) AS ReportedCostSum,
    sumIf(Duration / 1e6, IsLlmCall) AS LatencySumMs,
    quantilesStateIf(0.5, 0.95)(toFloat32(Duration / 1e6), IsLlmCall) AS LatencyMs,
    sumMapIf(([toString(Model)], [toUInt64(1)], [if(ReportedCostUsd IS NULL, InputTokens, 0)], [if(ReportedCostUsd IS NULL, CacheReadTokens, 0)], [if(ReportedCostUsd IS NULL, OutputTokens, 0)]), IsLlmCall AND Model != '') AS Models
FROM `${database}`.`${traces_table}`
GROUP BY Project, SessionId;

-- otel_traces is ordered for trace search (service, span name, time): a session's
-- spans sit in many granules of wide attribute maps. This narrow copy, ordered by
-- session, makes session_detail read one small range.
CREATE TABLE IF NOT EXISTS `${database}`.`${traces_table}_session_spans`${on_cluster} (
    Project LowCardinality(String),
    SessionId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    SpanName LowCardinality(String),
    SessionPath String CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    AgentId String CODEC(ZSTD(1)),
    RequestId String CODEC(ZSTD(1)),
    Provider LowCardinality(String),
    Model LowCardinality(String),
    Operation LowCardinality(String),
    IsLlmCall UInt8,
    InputTokens UInt64,
    OutputTokens UInt64,
    CacheReadTokens UInt64,
    ReportedCostUsd Nullable(Float64),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    TimeToFirstChunkMs Nullable(Float64),
    StatusCode LowCardinality(String),
    StatusMessage String CODEC(ZSTD(1)),
    FinishReasons String CODEC(ZSTD(1)),
    InputMessages String CODEC(ZSTD(1)),
    OutputMessages String CODEC(ZSTD(1))
) ENGINE = ${engine:MergeTree}
PARTITION BY toStartOfWeek(Timestamp)
ORDER BY (SessionId, Timestamp, SpanId)
${ttl:Timestamp}
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1${dedup_setting};

CREATE MATERIALIZED VIEW IF NOT EXISTS `${database}`.`${traces_table}_session_spans_mv`${on_cluster}
TO `${database}`.`${traces_table}_session_spans`
AS SELECT
    Project, SessionId, Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SessionPath,
    RunId, AgentId, RequestId, Provider, Model, Operation, IsLlmCall, InputTokens,
    OutputTokens, CacheReadTokens, ReportedCostUsd, Duration, StatusCode, StatusMessage,
    toFloat64OrNull(if(SpanAttributes['gen_ai.response.time_to_first_chunk'] != '', SpanAttributes['gen_ai.response.time_to_first_chunk'], ResourceAttributes['gen_ai.response.time_to_first_chunk'])) * 1000 AS TimeToFirstChunkMs,
    if(SpanAttributes['gen_ai.response.finish_reasons'] != '', SpanAttributes['gen_ai.response.finish_reasons'], ResourceAttributes['gen_ai.response.finish_reasons']) AS FinishReasons,
    if(SpanAttributes['gen_ai.input.messages'] != '', SpanAttributes['gen_ai.input.messages'], ResourceAttributes['gen_ai.input.messages']) AS InputMessages,
    if(SpanAttributes['gen_ai.output.messages'] != '', SpanAttributes['gen_ai.output.messages'], ResourceAttributes['gen_ai.output.messages']) AS OutputMessages
FROM `${database}`.`${traces_table}`;
