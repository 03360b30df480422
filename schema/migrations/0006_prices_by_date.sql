-- prices from genai-prices with effective dates and a price history per provider; calls priced by response model, else request model

-- Frozen once released: never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
--
-- A call is priced by the lookup rule of sessionlens/schema/prices.py (the cost processor
-- runs the same rule in Python; tests hold the two equal): its response model, then its
-- request model; for each the span's provider, then any provider (''); for each the name,
-- without a leading 'provider/', without a Bedrock '-v2:0', without a release date; the
-- first (provider, name) with a price in force on the call's UTC day wins. It is one
-- multiIf (evaluated lazily: a call its first name prices costs one dictionary probe):
-- the ALIAS columns PriceKey ('', '' for none), Price (input, output, cache-read,
-- cache-write USD per 1M tokens) and PricedCostUsd of otel_traces and session_spans, and
-- the same multiIf on (provider, model, request model, day) in the views, which price the
-- session rollup's TokensToPrice.
-- Every statement can run again (IF NOT EXISTS / OR REPLACE), which is how apply()
-- recreates a missing object; the two rebuilds are data and run once.

-- model_prices keeps a price history per provider: a row is in force from its
-- effective_from day (UTC) until the next row of the same provider and model. provider ''
-- means any provider. Rows seeded from the genai-prices package have seeded = 1; a row
-- users INSERT has seeded = 0 and wins over seeded rows whatever its dates.
-- (New sorting-key columns must come without a default expression: '' and 1970-01-01.)
ALTER TABLE `${database}`.`model_prices`${on_cluster}
    ADD COLUMN IF NOT EXISTS provider String AFTER model,
    ADD COLUMN IF NOT EXISTS effective_from Date AFTER provider,
    ADD COLUMN IF NOT EXISTS cache_write_per_mtok Float64 DEFAULT input_per_mtok AFTER cached_input_per_mtok,
    ADD COLUMN IF NOT EXISTS seeded UInt8,
    MODIFY ORDER BY (model, provider, effective_from, seeded);

-- The hand-written price file seeded these; genai-prices replaces it.
ALTER TABLE `${database}`.`model_prices`${on_cluster} DELETE WHERE startsWith(source, 'prices.json@');

-- The prices in force, as the views and the cost processor read them: per (provider,
-- model, effective_from) the latest user row, else the row of the latest seed; a user row
-- for a model (of its provider, or of provider '') hides every seeded row of it. Rows with
-- a negative or non-finite price are left out (the model counts as unpriced).
CREATE OR REPLACE VIEW `${database}`.`model_prices_resolved`${on_cluster} AS
SELECT
    p AS provider, m AS model, f AS effective_from,
    i AS input_per_mtok, o AS output_per_mtok, c AS cached_input_per_mtok, w AS cache_write_per_mtok,
    s AS source
FROM (
    SELECT lower(provider) AS p, lower(model) AS m, effective_from AS f, seeded AS seed,
        argMax(input_per_mtok, updated_at) AS i, argMax(output_per_mtok, updated_at) AS o,
        argMax(cached_input_per_mtok, updated_at) AS c, argMax(cache_write_per_mtok, updated_at) AS w,
        argMax(source, updated_at) AS s
    FROM `${database}`.`model_prices`
    WHERE seeded = 0 OR source = (
        SELECT argMax(source, updated_at) FROM `${database}`.`model_prices` WHERE seeded = 1)
    GROUP BY p, m, f, seed
)
WHERE m != ''
    AND isFinite(i) AND isFinite(o) AND isFinite(c) AND isFinite(w)
    AND least(i, o, c, w) >= 0
    AND (seed = 0 OR ((p, m) NOT IN (
            SELECT lower(provider), lower(model) FROM `${database}`.`model_prices` WHERE seeded = 0)
        AND m NOT IN (
            SELECT lower(model) FROM `${database}`.`model_prices` WHERE seeded = 0 AND provider = '')));

-- Prices by (provider, model) and day: dictGet(…, (provider, model), day) returns the row
-- with the latest effective_from on or before that day.
CREATE OR REPLACE DICTIONARY `${database}`.`model_prices_dict`${on_cluster} (
    provider String,
    model String,
    effective_from Date,
    effective_to Date,
    input_per_mtok Float64,
    output_per_mtok Float64,
    cached_input_per_mtok Float64,
    cache_write_per_mtok Float64
)
PRIMARY KEY provider, model
SOURCE(CLICKHOUSE(QUERY 'SELECT provider, model, effective_from, toDate(\'2149-06-06\') AS effective_to, input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok FROM `${database}`.`model_prices_resolved`'))
LIFETIME(MIN 30 MAX 60)
LAYOUT(COMPLEX_KEY_RANGE_HASHED(range_lookup_strategy 'max'))
RANGE(MIN effective_from MAX effective_to);

-- otel_traces: cache-write tokens (bounded as the other token counts), the price of a
-- span by the rule above, and CostUsd (the span's own cost wins).
ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    ADD COLUMN IF NOT EXISTS CacheWriteTokens UInt64 MATERIALIZED
        toUInt64(least(greatest(ifNotFinite(toFloat64OrZero(coalesce(
            nullIf(SpanAttributes['gen_ai.usage.cache_creation.input_tokens'], ''),
            ResourceAttributes['gen_ai.usage.cache_creation.input_tokens'])), 0), 0), 1e12)),
    ADD COLUMN IF NOT EXISTS PriceKey Tuple(String, String) ALIAS multiIf(
        dictHas('${database}.model_prices_dict', (lower(Provider), lower(Model)), toDate(Timestamp, 'UTC')), (lower(Provider), lower(Model)),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(lower(Model), '^.*/', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(lower(Model), '^.*/', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', ('', lower(Model)), toDate(Timestamp, 'UTC')), ('', lower(Model)),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(Model), '^.*/', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(lower(Model), '^.*/', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), lower(RequestModel)), toDate(Timestamp, 'UTC')), (lower(Provider), lower(RequestModel)),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(lower(RequestModel), '^.*/', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(lower(RequestModel), '^.*/', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', ('', lower(RequestModel)), toDate(Timestamp, 'UTC')), ('', lower(RequestModel)),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(RequestModel), '^.*/', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(lower(RequestModel), '^.*/', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        ('', '')),
    ADD COLUMN IF NOT EXISTS Price Tuple(Float64, Float64, Float64, Float64) ALIAS dictGetOrDefault('${database}.model_prices_dict',
        ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok'),
        PriceKey, toDate(Timestamp, 'UTC'), (0., 0., 0., 0.)),
    ADD COLUMN IF NOT EXISTS PricedCostUsd Float64 ALIAS
        (greatest(toInt64(InputTokens) - toInt64(CacheReadTokens) - toInt64(CacheWriteTokens), 0) * Price.1 + CacheReadTokens * Price.3 + CacheWriteTokens * Price.4 + OutputTokens * Price.2) / 1e6,
    MODIFY COLUMN CostUsd Float64 ALIAS ifNull(ReportedCostUsd, if(IsLlmCall, PricedCostUsd, 0));

-- session_spans (session_detail, session_breakdown, an agent's vitals): the same.
ALTER TABLE `${database}`.`${traces_table}_session_spans`${on_cluster}
    ADD COLUMN IF NOT EXISTS CacheWriteTokens UInt64,
    MODIFY COLUMN PriceKey Tuple(String, String) ALIAS multiIf(
        dictHas('${database}.model_prices_dict', (lower(Provider), lower(Model)), toDate(Timestamp, 'UTC')), (lower(Provider), lower(Model)),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(lower(Model), '^.*/', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(lower(Model), '^.*/', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', ('', lower(Model)), toDate(Timestamp, 'UTC')), ('', lower(Model)),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(Model), '^.*/', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(lower(Model), '^.*/', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), lower(RequestModel)), toDate(Timestamp, 'UTC')), (lower(Provider), lower(RequestModel)),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(lower(RequestModel), '^.*/', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(lower(RequestModel), '^.*/', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), (lower(Provider), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        dictHas('${database}.model_prices_dict', ('', lower(RequestModel)), toDate(Timestamp, 'UTC')), ('', lower(RequestModel)),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(RequestModel), '^.*/', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(lower(RequestModel), '^.*/', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
        dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), toDate(Timestamp, 'UTC')), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(RequestModel), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
        ('', '')),
    ADD COLUMN IF NOT EXISTS Price Tuple(Float64, Float64, Float64, Float64) ALIAS dictGetOrDefault('${database}.model_prices_dict',
        ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok'),
        PriceKey, toDate(Timestamp, 'UTC'), (0., 0., 0., 0.)),
    ADD COLUMN IF NOT EXISTS PricedCostUsd Float64 ALIAS
        (greatest(toInt64(InputTokens) - toInt64(CacheReadTokens) - toInt64(CacheWriteTokens), 0) * Price.1 + CacheReadTokens * Price.3 + CacheWriteTokens * Price.4 + OutputTokens * Price.2) / 1e6,
    MODIFY COLUMN CostUsd Float64 ALIAS ifNull(ReportedCostUsd, if(IsLlmCall, PricedCostUsd, 0));

-- The session rollup: per (provider, model, request model, UTC day) the calls and tokens
-- of LLM calls with no cost of their own, priced when read (a price INSERT or a newer
-- genai-prices re-prices them, each at its day's price).
ALTER TABLE `${database}`.`${traces_table}_sessions`${on_cluster}
    ADD COLUMN IF NOT EXISTS TokensToPrice SimpleAggregateFunction(sumMap, Tuple(
        Array(Tuple(String, String, String, Date)),
        Array(UInt64), Array(UInt64), Array(UInt64), Array(UInt64), Array(UInt64)));

CREATE OR REPLACE MATERIALIZED VIEW `${database}`.`${traces_table}_sessions_mv`${on_cluster}
TO `${database}`.`${traces_table}_sessions`
AS SELECT
    Project,
    SessionId,
    min(Timestamp) AS FirstSeen,
    max(addNanoseconds(Timestamp, Duration)) AS LastSeen,
    -- the latest non-empty value (an empty one sorts before any real time)
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
    -- LLM attempts and failed attempts; Retries below (see the counting rules above)
    countIf(IsLlmCall) AS LlmCalls,
    countIf(IsLlmCall AND IsError) AS LlmErrors,
    sumIf(InputTokens, IsLlmCall) AS InputTokensSum,
    sumIf(OutputTokens, IsLlmCall) AS OutputTokensSum,
    sumIf(ifNull(ReportedCostUsd, 0), IsLlmCall) AS ReportedCostSum,
    sumIf(Duration / 1e6, IsLlmCall) AS LatencySumMs,
    quantilesStateIf(0.5, 0.95)(toFloat32(Duration / 1e6), IsLlmCall) AS LatencyMs,
    sumMapIf((
        [toString(Model)],
        [toUInt64(1)],
        [if(ReportedCostUsd IS NULL, InputTokens, 0)],
        [if(ReportedCostUsd IS NULL, CacheReadTokens, 0)],
        [if(ReportedCostUsd IS NULL, OutputTokens, 0)]), IsLlmCall AND Model != '') AS Models,
    countIf(IsLlmCall AND ResendCount > 0) AS Retries,
    sumIf(CacheReadTokens, IsLlmCall) AS CachedInputTokensSum,
    countIf(IsPolicyEvent) AS PolicyEvents,
    maxMap(mapApply(
        (k, v) -> (replaceOne(k, 'sessionlens.property.', ''), (Timestamp, v)),
        mapFilter((k, v) -> startsWith(k, 'sessionlens.property.') AND v != '', SpanAttributes)
    )) AS Properties,
    sumMapIf(([toString(Model)], [toUInt64(1)]),
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS CallsToPrice,
    sumMapIf(([(toString(Provider), toString(Model), RequestModel, toDate(Timestamp, 'UTC'))],
        [toUInt64(1)], [InputTokens], [CacheReadTokens], [CacheWriteTokens], [OutputTokens]),
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS TokensToPrice
FROM `${database}`.`${traces_table}`
GROUP BY Project, SessionId;

CREATE OR REPLACE MATERIALIZED VIEW `${database}`.`${traces_table}_session_spans_mv`${on_cluster}
TO `${database}`.`${traces_table}_session_spans`
AS SELECT
    Project, SessionId, Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SessionPath,
    RunId, AgentId, RequestId, Provider, Model, Operation, IsLlmCall, InputTokens,
    OutputTokens, CacheReadTokens, ReportedCostUsd, Duration,
    -- the attribute is in seconds, as the GenAI time-to-first-token metric
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000 AS TimeToFirstChunkMs,
    StatusCode, StatusMessage,
    SpanAttributes['gen_ai.response.finish_reasons'] AS FinishReasons,
    SpanAttributes['gen_ai.input.messages'] AS InputMessages,
    SpanAttributes['gen_ai.output.messages'] AS OutputMessages,
    AgentName, RequestModel, ResendCount, IsHttpClient, IsError, CacheWriteTokens
FROM `${database}`.`${traces_table}`;

-- Rebuild both rollups from the spans, so sessions stored before this migration are
-- priced by the rules above too (as migration 5 did; the same caveats on a cluster).
TRUNCATE TABLE `${database}`.`${traces_table}_sessions`;

INSERT INTO `${database}`.`${traces_table}_sessions`
SETTINGS insert_deduplicate = 0
SELECT
    Project,
    SessionId,
    min(Timestamp) AS FirstSeen,
    max(addNanoseconds(Timestamp, Duration)) AS LastSeen,
    -- the latest non-empty value (an empty one sorts before any real time)
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
    -- LLM attempts and failed attempts; Retries below (see the counting rules above)
    countIf(IsLlmCall) AS LlmCalls,
    countIf(IsLlmCall AND IsError) AS LlmErrors,
    sumIf(InputTokens, IsLlmCall) AS InputTokensSum,
    sumIf(OutputTokens, IsLlmCall) AS OutputTokensSum,
    sumIf(ifNull(ReportedCostUsd, 0), IsLlmCall) AS ReportedCostSum,
    sumIf(Duration / 1e6, IsLlmCall) AS LatencySumMs,
    quantilesStateIf(0.5, 0.95)(toFloat32(Duration / 1e6), IsLlmCall) AS LatencyMs,
    sumMapIf((
        [toString(Model)],
        [toUInt64(1)],
        [if(ReportedCostUsd IS NULL, InputTokens, 0)],
        [if(ReportedCostUsd IS NULL, CacheReadTokens, 0)],
        [if(ReportedCostUsd IS NULL, OutputTokens, 0)]), IsLlmCall AND Model != '') AS Models,
    countIf(IsLlmCall AND ResendCount > 0) AS Retries,
    sumIf(CacheReadTokens, IsLlmCall) AS CachedInputTokensSum,
    countIf(IsPolicyEvent) AS PolicyEvents,
    maxMap(mapApply(
        (k, v) -> (replaceOne(k, 'sessionlens.property.', ''), (Timestamp, v)),
        mapFilter((k, v) -> startsWith(k, 'sessionlens.property.') AND v != '', SpanAttributes)
    )) AS Properties,
    sumMapIf(([toString(Model)], [toUInt64(1)]),
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS CallsToPrice,
    sumMapIf(([(toString(Provider), toString(Model), RequestModel, toDate(Timestamp, 'UTC'))],
        [toUInt64(1)], [InputTokens], [CacheReadTokens], [CacheWriteTokens], [OutputTokens]),
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS TokensToPrice
FROM `${database}`.`${traces_table}`
GROUP BY Project, SessionId;

TRUNCATE TABLE `${database}`.`${traces_table}_session_spans`;

INSERT INTO `${database}`.`${traces_table}_session_spans`
SETTINGS insert_deduplicate = 0
SELECT
    Project, SessionId, Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SessionPath,
    RunId, AgentId, RequestId, Provider, Model, Operation, IsLlmCall, InputTokens,
    OutputTokens, CacheReadTokens, ReportedCostUsd, Duration,
    -- the attribute is in seconds, as the GenAI time-to-first-token metric
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) * 1000 AS TimeToFirstChunkMs,
    StatusCode, StatusMessage,
    SpanAttributes['gen_ai.response.finish_reasons'] AS FinishReasons,
    SpanAttributes['gen_ai.input.messages'] AS InputMessages,
    SpanAttributes['gen_ai.output.messages'] AS OutputMessages,
    AgentName, RequestModel, ResendCount, IsHttpClient, IsError, CacheWriteTokens
FROM `${database}`.`${traces_table}`;

-- The views, priced by the rule above.
CREATE OR REPLACE VIEW `${database}`.`session_list`${on_cluster} AS
WITH (SELECT toInt64(1000 * ifNull(toFloat64OrNull(argMax(value, updated_at)), 1800))
    FROM `${database}`.`sessionlens_settings` WHERE name = 'inactivity_timeout_s') AS inactivity_ms
SELECT
    SessionId AS session_id, session_name, source, Project AS project, user_id,
    environment, service_name, first_seen, last_seen,
    (toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9 AS duration_s,
    if(last_seen >= now64(9) - toIntervalMillisecond(inactivity_ms), 'active', 'completed') AS status,
    trace_count,
    attempts - retries AS llm_calls,
    runs, agents, per_model.1 AS models, input_tokens, output_tokens, cached_input_tokens,
    if(isFinite(reported_cost), reported_cost, 0) + -- the tokens of calls with no cost of their own, each at its day's price (the rule of
    -- PriceKey above, on (provider, model, request model, day))
    arraySum(arrayMap((k, i, c, w, o, p) -> (greatest(toInt64(i) - toInt64(c) - toInt64(w), 0) * p.1 + c * p.3 + w * p.4 + o * p.2) / 1e6,
        to_price.1, to_price.3, to_price.4, to_price.5, to_price.6,
        arrayMap(k -> dictGetOrDefault('${database}.model_prices_dict',
            ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok'),
            multiIf(
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                ('', '')), k.4, (0., 0., 0., 0.)), to_price.1))) AS cost_usd,
    arraySum(arrayMap((k, n) -> if(multiIf(
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    ('', '')) = ('', ''), n, 0),
        to_price.1, to_price.2)) AS unpriced_calls,
    toUInt64(greatest(toInt64(failed_attempts) - toInt64(retries), 0)) AS errors,
    retries,
    if(llm_calls > 0, 1 - errors / llm_calls, 1) AS success_rate,
    if(attempts > 0, latency_sum_ms / attempts, 0) AS avg_latency_ms,
    if(attempts > 0, toFloat64(latency_ms[2]), 0) AS p95_latency_ms,
    mapApply((name, latest) -> (name, latest.2), latest_properties) AS properties,
    policy_events
FROM (
    SELECT Project, SessionId,
        argMaxMerge(NameState) AS session_name, argMaxMerge(SourceState) AS source,
        argMaxMerge(UserState) AS user_id, argMaxMerge(EnvironmentState) AS environment,
        argMinMerge(ServiceState) AS service_name,
        min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        uniqExactMerge(Traces) AS trace_count, uniqExactMerge(Runs) AS runs,
        arraySort(groupUniqArrayArray(Agents)) AS agents,
        sum(LlmCalls) AS attempts, sum(LlmErrors) AS failed_attempts, sum(Retries) AS retries,
        sum(InputTokensSum) AS input_tokens, sum(OutputTokensSum) AS output_tokens,
        sum(CachedInputTokensSum) AS cached_input_tokens, sum(ReportedCostSum) AS reported_cost,
        sum(LatencySumMs) AS latency_sum_ms, quantilesMerge(0.5, 0.95)(LatencyMs) AS latency_ms,
        sumMap(Models) AS per_model, sumMap(TokensToPrice) AS to_price,
        maxMap(Properties) AS latest_properties, sum(PolicyEvents) AS policy_events
    FROM `${database}`.`${traces_table}_sessions`
    GROUP BY Project, SessionId
);

CREATE OR REPLACE VIEW `${database}`.`session_list_page`${on_cluster} AS
WITH (SELECT toInt64(1000 * ifNull(toFloat64OrNull(argMax(value, updated_at)), 1800))
    FROM `${database}`.`sessionlens_settings` WHERE name = 'inactivity_timeout_s') AS inactivity_ms
SELECT * FROM (
SELECT
    SessionId AS session_id, session_name, source, Project AS project, user_id,
    environment, service_name, first_seen, last_seen,
    (toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9 AS duration_s,
    if(last_seen >= now64(9) - toIntervalMillisecond(inactivity_ms), 'active', 'completed') AS status,
    trace_count,
    attempts - retries AS llm_calls,
    runs, agents, per_model.1 AS models, input_tokens, output_tokens, cached_input_tokens,
    if(isFinite(reported_cost), reported_cost, 0) + -- the tokens of calls with no cost of their own, each at its day's price (the rule of
    -- PriceKey above, on (provider, model, request model, day))
    arraySum(arrayMap((k, i, c, w, o, p) -> (greatest(toInt64(i) - toInt64(c) - toInt64(w), 0) * p.1 + c * p.3 + w * p.4 + o * p.2) / 1e6,
        to_price.1, to_price.3, to_price.4, to_price.5, to_price.6,
        arrayMap(k -> dictGetOrDefault('${database}.model_prices_dict',
            ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok'),
            multiIf(
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                ('', '')), k.4, (0., 0., 0., 0.)), to_price.1))) AS cost_usd,
    arraySum(arrayMap((k, n) -> if(multiIf(
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    ('', '')) = ('', ''), n, 0),
        to_price.1, to_price.2)) AS unpriced_calls,
    toUInt64(greatest(toInt64(failed_attempts) - toInt64(retries), 0)) AS errors,
    retries,
    if(llm_calls > 0, 1 - errors / llm_calls, 1) AS success_rate,
    if(attempts > 0, latency_sum_ms / attempts, 0) AS avg_latency_ms,
    if(attempts > 0, toFloat64(latency_ms[2]), 0) AS p95_latency_ms,
    mapApply((name, latest) -> (name, latest.2), latest_properties) AS properties,
    policy_events
FROM (
    SELECT Project, SessionId,
        argMaxMerge(NameState) AS session_name, argMaxMerge(SourceState) AS source,
        argMaxMerge(UserState) AS user_id, argMaxMerge(EnvironmentState) AS environment,
        argMinMerge(ServiceState) AS service_name,
        min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        uniqExactMerge(Traces) AS trace_count, uniqExactMerge(Runs) AS runs,
        arraySort(groupUniqArrayArray(Agents)) AS agents,
        sum(LlmCalls) AS attempts, sum(LlmErrors) AS failed_attempts, sum(Retries) AS retries,
        sum(InputTokensSum) AS input_tokens, sum(OutputTokensSum) AS output_tokens,
        sum(CachedInputTokensSum) AS cached_input_tokens, sum(ReportedCostSum) AS reported_cost,
        sum(LatencySumMs) AS latency_sum_ms, quantilesMerge(0.5, 0.95)(LatencyMs) AS latency_ms,
        sumMap(Models) AS per_model, sumMap(TokensToPrice) AS to_price,
        maxMap(Properties) AS latest_properties, sum(PolicyEvents) AS policy_events
    FROM `${database}`.`${traces_table}_sessions`
    -- the page is chosen on the light columns (times, user, environment); only then are
    -- the bulky states of its sessions read, through the primary key
    WHERE (Project, SessionId) IN (
        SELECT Project, SessionId FROM `${database}`.`${traces_table}_sessions`
        GROUP BY Project, SessionId
        HAVING ({project:String} = '' OR Project = {project:String}) AND
           ({user:String} = '' OR argMaxMerge(UserState) = {user:String}) AND
           ({environment:String} = '' OR argMaxMerge(EnvironmentState) = {environment:String}) AND
           ({status:String} = '' OR if(max(LastSeen) >= now64(9) - toIntervalMillisecond(inactivity_ms), 'active', 'completed') = {status:String}) AND
           ({before:String} = '' OR max(LastSeen) < parseDateTime64BestEffortOrNull({before:String}, 9))
        ORDER BY max(LastSeen) DESC, SessionId DESC
        LIMIT {limit:UInt32})
    GROUP BY Project, SessionId
)
)
ORDER BY last_seen DESC, session_id DESC;

-- Sessions that overlap [since, until] count whole. With agent='' the figures are the
-- sessions'; with an agent they are that agent's own share of them (its calls, cost,
-- errors, tokens and latency), read from its spans, never the whole session's.
CREATE OR REPLACE VIEW `${database}`.`session_vitals`${on_cluster} AS
WITH (SELECT toInt64(1000 * ifNull(toFloat64OrNull(argMax(value, updated_at)), 1800))
    FROM `${database}`.`sessionlens_settings` WHERE name = 'inactivity_timeout_s') AS inactivity_ms,
selected_keys AS (
    SELECT Project, SessionId FROM `${database}`.`${traces_table}_sessions`
    GROUP BY Project, SessionId
    HAVING ({since:String} = '' OR max(LastSeen) >= parseDateTime64BestEffortOrNull({since:String}, 9)) AND
        ({until:String} = '' OR min(FirstSeen) <= parseDateTime64BestEffortOrNull({until:String}, 9)) AND
        ({project:String} = '' OR Project = {project:String}) AND
        ({environment:String} = '' OR argMaxMergeIf(EnvironmentState, {environment:String} != '') = {environment:String}) AND
        ({service:String} = '' OR argMinMergeIf(ServiceState, {service:String} != '') = {service:String}) AND
        ({agent:String} = '' OR has(groupUniqArrayArrayIf(Agents, {agent:String} != ''), {agent:String})) AND
        ({user:String} = '' OR argMaxMergeIf(UserState, {user:String} != '') = {user:String})
),
selected AS (
    SELECT Project, SessionId, min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        argMaxMerge(UserState) AS user_id,
        sum(LlmCalls) - sum(Retries) AS calls,
        greatest(toInt64(sum(LlmErrors)) - toInt64(sum(Retries)), 0) AS call_errors,
        sum(ReportedCostSum) AS reported_cost,
        sum(InputTokensSum) + sum(OutputTokensSum) AS tokens
    FROM `${database}`.`${traces_table}_sessions`
    GROUP BY Project, SessionId
    HAVING ({since:String} = '' OR max(LastSeen) >= parseDateTime64BestEffortOrNull({since:String}, 9)) AND
        ({until:String} = '' OR min(FirstSeen) <= parseDateTime64BestEffortOrNull({until:String}, 9)) AND
        ({project:String} = '' OR Project = {project:String}) AND
        ({environment:String} = '' OR argMaxMergeIf(EnvironmentState, {environment:String} != '') = {environment:String}) AND
        ({service:String} = '' OR argMinMergeIf(ServiceState, {service:String} != '') = {service:String}) AND
        ({agent:String} = '' OR has(groupUniqArrayArrayIf(Agents, {agent:String} != ''), {agent:String})) AND
        ({user:String} = '' OR argMaxMergeIf(UserState, {user:String} != '') = {user:String})
),
(SELECT quantilesMerge(0.5, 0.95)(LatencyMs) FROM `${database}`.`${traces_table}_sessions`
    WHERE (Project, SessionId) IN selected_keys SETTINGS use_index_for_in_with_subqueries = 0) AS call_latency_ms,
-- the tokens of calls with no cost of their own, summed by (provider, model, request
-- model, day) across the sessions before they are priced: a few rows at any scale
(SELECT sum((greatest(toInt64(i) - toInt64(c) - toInt64(w), 0) * p.1 + c * p.3 + w * p.4 + o * p.2) / 1e6)
    FROM (SELECT k, i, c, w, o, dictGetOrDefault('${database}.model_prices_dict',
            ('input_per_mtok', 'output_per_mtok', 'cached_input_per_mtok', 'cache_write_per_mtok'),
            multiIf(
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                ('', '')), k.4, (0., 0., 0., 0.)) AS p
    FROM (SELECT k, sum(i) AS i, sum(c) AS c, sum(w) AS w, sum(o) AS o
        FROM (SELECT TokensToPrice FROM `${database}`.`${traces_table}_sessions` WHERE (Project, SessionId) IN selected_keys)
        ARRAY JOIN TokensToPrice.1 AS k, TokensToPrice.3 AS i, TokensToPrice.4 AS c,
            TokensToPrice.5 AS w, TokensToPrice.6 AS o
        GROUP BY k))
    SETTINGS use_index_for_in_with_subqueries = 0) AS to_price_cost,
-- the agent's own share: (calls, errors, cost, tokens, latency quantiles) of its LLM spans
(SELECT (
        countIf(ResendCount = 0),
        toUInt64(greatest(toInt64(countIf(IsError)) - toInt64(countIf(ResendCount > 0)), 0)),
        sum(CostUsd),
        sum(InputTokens + OutputTokens),
        quantiles(0.5, 0.95)(Duration / 1e6))
    FROM `${database}`.`${traces_table}_session_spans`
    WHERE {agent:String} != '' AND IsLlmCall AND AgentKey = {agent:String}
        AND (Project, SessionId) IN selected_keys) AS agent_share
SELECT
    count() AS sessions,
    countIf(if(last_seen >= now64(9) - toIntervalMillisecond(inactivity_ms), 'active', 'completed') = 'active') AS active_sessions,
    uniqExactIf(user_id, user_id != '') AS users,
    if({agent:String} = '', sum(calls), agent_share.1) AS llm_calls,
    if(sessions > 0, llm_calls / sessions, 0) AS avg_calls_per_session,
    if({agent:String} = '',
        if(isFinite(sum(reported_cost)), sum(reported_cost), 0) + to_price_cost,
        agent_share.3) AS total_cost_usd,
    if(sessions > 0, total_cost_usd / sessions, 0) AS avg_cost_per_session,
    if(sessions > 0, quantile(0.5)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p50_session_duration_s,
    if(sessions > 0, quantile(0.95)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p95_session_duration_s,
    if(llm_calls > 0, toFloat64(if({agent:String} = '', call_latency_ms[1], agent_share.5[1])), 0) AS p50_call_latency_ms,
    if(llm_calls > 0, toFloat64(if({agent:String} = '', call_latency_ms[2], agent_share.5[2])), 0) AS p95_call_latency_ms,
    if(llm_calls > 0, if({agent:String} = '', sum(call_errors), agent_share.2) / llm_calls, 0) AS error_rate,
    if({agent:String} = '', sum(tokens), agent_share.4) AS total_tokens
FROM selected;

-- Models of LLM calls still priced 0 for lack of a price (by response, else request model).
CREATE OR REPLACE VIEW `${database}`.`unpriced_models`${on_cluster} AS
SELECT k.2 AS model, sum(n) AS calls
FROM (
    SELECT k, sum(n) AS n
    FROM `${database}`.`${traces_table}_sessions`
    ARRAY JOIN TokensToPrice.1 AS k, TokensToPrice.2 AS n
    GROUP BY k)
WHERE multiIf(
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.2)), k.4), (lower(k.1), lower(k.2)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.2)), k.4), ('', lower(k.2)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.2), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.2), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.2), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), lower(k.3)), k.4), (lower(k.1), lower(k.3)),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), (lower(k.1), replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), (lower(k.1), replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    dictHas('${database}.model_prices_dict', ('', lower(k.3)), k.4), ('', lower(k.3)),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(lower(k.3), '^.*/', '')), k.4), ('', replaceRegexpOne(lower(k.3), '^.*/', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', '')),
                    dictHas('${database}.model_prices_dict', ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')), k.4), ('', replaceRegexpOne(replaceRegexpOne(replaceRegexpOne(lower(k.3), '^.*/', ''), '-v[0-9]+(:[0-9]+)?$', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                    ('', '')) = ('', '') AND k.2 != ''
GROUP BY model
ORDER BY calls DESC, model;
