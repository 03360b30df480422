-- what counts: logical calls, retries, final-attempt errors, transport spans, settings, properties, breakdowns

-- Frozen once released: never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
--
-- Counting rules (SPEC 4 "What counts"), the same in every view:
--   * an LLM attempt with http.request.resend_count > 0 is a retry: it counts in
--     `retries`, not in `llm_calls`, so llm_calls = attempts - retries;
--   * the SDKs retry only after a failed attempt (HTTP 408/409/429/5xx, a timeout, a lost
--     connection), so each retry stands for exactly one failed attempt that was not the
--     call's last: errors = failed attempts - retries counts the calls whose FINAL attempt
--     failed. Both are plain sums, so the difference is exact across insert blocks and
--     per key (agent, run, path and requested model are the same for every attempt of a
--     call); it is floored at 0 at read time, for writers that send a retry but lost the
--     attempt before it;
--   * spans that are no LLM call (agent and tool spans, the HTTP client spans the httpx
--     instrumentation puts under each LLM span) never count as calls or errors;
--   * latency figures are per attempt (each attempt is one request).
-- Every statement can run again (IF NOT EXISTS / OR REPLACE), which is how apply()
-- recreates a missing object; the two rebuilds at the end are data and run once.

-- One source of truth for deployment settings the views read: the collector writes its
-- autosession processor's inactivity_timeout here at every start, and so does
-- 'sessionlens schema apply --inactivity-timeout'; the newest row per name wins.
CREATE TABLE IF NOT EXISTS `${database}`.`sessionlens_settings`${on_cluster} (
    name String,
    value String,
    updated_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ${engine:ReplacingMergeTree(updated_at)}
ORDER BY name;

-- Helper ALIAS columns (computed when read, never stored): each attribute read once, the
-- first of its key and aliases (sessionlens/conventions.py) that the span carries, then
-- the resource's.
ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    ADD COLUMN IF NOT EXISTS InputTokensAttribute String ALIAS coalesce(
        nullIf(SpanAttributes[multiIf(
            mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'), 'gen_ai.usage.input_tokens',
            mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens'), 'gen_ai.usage.prompt_tokens',
            mapContains(SpanAttributes, 'llm.token_count.prompt'), 'llm.token_count.prompt',
            'gen_ai.usage.input_tokens')], ''),
        ResourceAttributes[multiIf(
            mapContains(ResourceAttributes, 'gen_ai.usage.input_tokens'), 'gen_ai.usage.input_tokens',
            mapContains(ResourceAttributes, 'gen_ai.usage.prompt_tokens'), 'gen_ai.usage.prompt_tokens',
            mapContains(ResourceAttributes, 'llm.token_count.prompt'), 'llm.token_count.prompt',
            'gen_ai.usage.input_tokens')]),
    ADD COLUMN IF NOT EXISTS OutputTokensAttribute String ALIAS coalesce(
        nullIf(SpanAttributes[multiIf(
            mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'), 'gen_ai.usage.output_tokens',
            mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens'), 'gen_ai.usage.completion_tokens',
            mapContains(SpanAttributes, 'llm.token_count.completion'), 'llm.token_count.completion',
            'gen_ai.usage.output_tokens')], ''),
        ResourceAttributes[multiIf(
            mapContains(ResourceAttributes, 'gen_ai.usage.output_tokens'), 'gen_ai.usage.output_tokens',
            mapContains(ResourceAttributes, 'gen_ai.usage.completion_tokens'), 'gen_ai.usage.completion_tokens',
            mapContains(ResourceAttributes, 'llm.token_count.completion'), 'llm.token_count.completion',
            'gen_ai.usage.output_tokens')]),
    ADD COLUMN IF NOT EXISTS CacheReadTokensAttribute String ALIAS coalesce(
        nullIf(SpanAttributes['gen_ai.usage.cache_read.input_tokens'], ''),
        ResourceAttributes['gen_ai.usage.cache_read.input_tokens']),
    ADD COLUMN IF NOT EXISTS CostAttribute String ALIAS coalesce(
        nullIf(SpanAttributes[multiIf(
            mapContains(SpanAttributes, 'gen_ai.usage.cost'), 'gen_ai.usage.cost',
            mapContains(SpanAttributes, 'llm.cost.total'), 'llm.cost.total',
            'gen_ai.usage.cost')], ''),
        ResourceAttributes[multiIf(
            mapContains(ResourceAttributes, 'gen_ai.usage.cost'), 'gen_ai.usage.cost',
            mapContains(ResourceAttributes, 'llm.cost.total'), 'llm.cost.total',
            'gen_ai.usage.cost')]),
    ADD COLUMN IF NOT EXISTS RequestModel String ALIAS coalesce(
        nullIf(SpanAttributes['gen_ai.request.model'], ''),
        ResourceAttributes['gen_ai.request.model']),
    -- the retry number of an attempt (0: a call's first attempt)
    ADD COLUMN IF NOT EXISTS ResendCount UInt64 ALIAS
        toUInt64OrZero(SpanAttributes['http.request.resend_count']),
    -- an HTTP client span; under an LLM span it is the call's transport (session_detail)
    ADD COLUMN IF NOT EXISTS IsHttpClient UInt8 ALIAS
        SpanKind IN ('Client', 'SPAN_KIND_CLIENT')
        AND (mapContains(SpanAttributes, 'http.request.method')
             OR mapContains(SpanAttributes, 'http.method'))
        AND NOT IsLlmCall,
    -- a call a provider's policy stopped: its finish reason, or a policy error
    ADD COLUMN IF NOT EXISTS IsPolicyEvent UInt8 ALIAS IsLlmCall AND (
        hasAny(
            arrayMap(r -> lower(r), if(
                startsWith(SpanAttributes['gen_ai.response.finish_reasons'], '['),
                JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)'),
                [SpanAttributes['gen_ai.response.finish_reasons']])),
            ['blocklist', 'content_filter', 'prohibited_content', 'refusal', 'safety', 'spii'])
        OR (IsError AND match(
            lower(concat(StatusMessage, ' ', SpanAttributes['error.type'])),
            'content_policy|content_filter|content_management_policy|responsibleaipolicyviolation')));

-- Numbers stay sane whatever wrote the span (a stock OTel Collector bypasses the
-- collector's checks): a token count that is no number, negative or NaN counts 0, one
-- beyond 10^12 (more than any model reads or writes in one call; also beyond Int64,
-- where a plain toUInt64OrZero gave 0) counts 10^12, so sums cannot wrap; a cost that is
-- NaN, infinite, negative or above 10^6 USD is ignored (the span is priced by the table).
ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    MODIFY COLUMN InputTokens UInt64 MATERIALIZED
        toUInt64(least(greatest(ifNotFinite(toFloat64OrZero(InputTokensAttribute), 0), 0), 1e12)),
    MODIFY COLUMN OutputTokens UInt64 MATERIALIZED
        toUInt64(least(greatest(ifNotFinite(toFloat64OrZero(OutputTokensAttribute), 0), 0), 1e12)),
    MODIFY COLUMN CacheReadTokens UInt64 MATERIALIZED
        toUInt64(least(greatest(ifNotFinite(toFloat64OrZero(CacheReadTokensAttribute), 0), 0), 1e12)),
    MODIFY COLUMN ReportedCostUsd Nullable(Float64) MATERIALIZED
        if(toFloat64OrNull(CostAttribute) BETWEEN 0 AND 1e6, toFloat64OrNull(CostAttribute), NULL);

-- The session rollup's new figures (rows written before this migration are rebuilt below).
ALTER TABLE `${database}`.`${traces_table}_sessions`${on_cluster}
    ADD COLUMN IF NOT EXISTS Retries SimpleAggregateFunction(sum, UInt64),
    ADD COLUMN IF NOT EXISTS CachedInputTokensSum SimpleAggregateFunction(sum, UInt64),
    ADD COLUMN IF NOT EXISTS PolicyEvents SimpleAggregateFunction(sum, UInt64),
    -- per property name: (time, value) of its latest value; maxMap keeps the latest
    ADD COLUMN IF NOT EXISTS Properties
        SimpleAggregateFunction(maxMap, Map(String, Tuple(DateTime64(9), String))),
    -- per model: LLM calls with tokens and no cost of their own, which need a price
    ADD COLUMN IF NOT EXISTS CallsToPrice
        SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64)));

ALTER TABLE `${database}`.`${traces_table}_session_spans`${on_cluster}
    ADD COLUMN IF NOT EXISTS AgentName String CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS RequestModel LowCardinality(String),
    ADD COLUMN IF NOT EXISTS ResendCount UInt64,
    ADD COLUMN IF NOT EXISTS IsHttpClient UInt8,
    ADD COLUMN IF NOT EXISTS IsError UInt8,
    -- the agent and model a breakdown groups by: the agent's id, else its name; the model
    -- the call asked for (a failed attempt has no response model, so keying by it would
    -- split one retried call across two models), else the response model
    ADD COLUMN IF NOT EXISTS AgentKey String ALIAS if(AgentId != '', AgentId, AgentName),
    ADD COLUMN IF NOT EXISTS CallModel String ALIAS if(RequestModel != '', RequestModel, Model),
    -- the price-table key of Model: the rule of sessionlens.schema.prices.canonical_model
    ADD COLUMN IF NOT EXISTS PriceKey String ALIAS if(
        dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', '')))
        OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(
            replaceRegexpOne(lower(Model), '^.*/', ''),
            '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))),
        replaceRegexpOne(lower(Model), '^.*/', ''),
        replaceRegexpOne(
            replaceRegexpOne(lower(Model), '^.*/', ''),
            '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
    -- as otel_traces.CostUsd: the span's own cost wins, else its tokens at today's prices
    ADD COLUMN IF NOT EXISTS CostUsd Float64 ALIAS ifNull(ReportedCostUsd, if(IsLlmCall, (
        greatest(toInt64(InputTokens) - toInt64(CacheReadTokens), 0)
            * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(PriceKey), toFloat64(0))
        + CacheReadTokens
            * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(PriceKey), toFloat64(0))
        + OutputTokens
            * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(PriceKey), toFloat64(0))
        ) / 1e6, 0));

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
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS CallsToPrice
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
    AgentName, RequestModel, ResendCount, IsHttpClient, IsError
FROM `${database}`.`${traces_table}`;

-- Rebuild both rollups from the spans, so sessions stored before this migration count
-- by the rules above too. This runs once, before the collector inserts anything; each
-- SELECT is its view's, columns in the table's order (a test holds them equal). On a
-- cluster it rebuilds the shard of the node the migration runs on (replicas follow);
-- on more shards, run these four statements on one replica of each.
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
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS CallsToPrice
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
    AgentName, RequestModel, ResendCount, IsHttpClient, IsError
FROM `${database}`.`${traces_table}`;

-- The public views (stable names and columns, SPEC 4). session_list columns in SPEC order.
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
    if(isFinite(reported_cost), reported_cost, 0) + arraySum(arrayMap(
        (k, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(k), toFloat64(0))
            + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(k), toFloat64(0))
            + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(k), toFloat64(0))) / 1e6,
        -- the price key of each model: prices.canonical_model's rule
        arrayMap(k -> if(dictHas('${database}.model_prices_dict', tuple(k))
                OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))),
                k, replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
            arrayMap(m -> replaceRegexpOne(lower(m), '^.*/', ''), per_model.1)),
        per_model.3, per_model.4, per_model.5)) AS cost_usd,
    arraySum(arrayMap(
        (k, n) -> if(dictHas('${database}.model_prices_dict', tuple(k)) OR dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), 0, n),
        arrayMap(m -> replaceRegexpOne(lower(m), '^.*/', ''), to_price.1),
        to_price.2)) AS unpriced_calls,
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
        sumMap(Models) AS per_model, sumMap(CallsToPrice) AS to_price,
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
    if(isFinite(reported_cost), reported_cost, 0) + arraySum(arrayMap(
        (k, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(k), toFloat64(0))
            + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(k), toFloat64(0))
            + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(k), toFloat64(0))) / 1e6,
        -- the price key of each model: prices.canonical_model's rule
        arrayMap(k -> if(dictHas('${database}.model_prices_dict', tuple(k))
                OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))),
                k, replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
            arrayMap(m -> replaceRegexpOne(lower(m), '^.*/', ''), per_model.1)),
        per_model.3, per_model.4, per_model.5)) AS cost_usd,
    arraySum(arrayMap(
        (k, n) -> if(dictHas('${database}.model_prices_dict', tuple(k)) OR dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), 0, n),
        arrayMap(m -> replaceRegexpOne(lower(m), '^.*/', ''), to_price.1),
        to_price.2)) AS unpriced_calls,
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
        sumMap(Models) AS per_model, sumMap(CallsToPrice) AS to_price,
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
-- the shape of sumMap(Models), summed by model after an ARRAY JOIN (sumMap over 100k
-- sessions costs ~5x more)
(SELECT (groupArray(m), groupArray(n), groupArray(i), groupArray(c), groupArray(o))
    FROM (SELECT m, sum(n) AS n, sum(i) AS i, sum(c) AS c, sum(o) AS o
        FROM (SELECT Models FROM `${database}`.`${traces_table}_sessions` WHERE (Project, SessionId) IN selected_keys)
        ARRAY JOIN Models.1 AS m, Models.2 AS n, Models.3 AS i, Models.4 AS c, Models.5 AS o
        GROUP BY m) SETTINGS use_index_for_in_with_subqueries = 0) AS per_model,
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
        if(isFinite(sum(reported_cost)), sum(reported_cost), 0) + arraySum(arrayMap(
            (k, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(k), toFloat64(0))
                + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(k), toFloat64(0))
                + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(k), toFloat64(0))) / 1e6,
            -- the price key of each model: prices.canonical_model's rule
            arrayMap(k -> if(dictHas('${database}.model_prices_dict', tuple(k))
                    OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))),
                    k, replaceRegexpOne(k, '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', '')),
                arrayMap(m -> replaceRegexpOne(lower(m), '^.*/', ''), per_model.1)),
            per_model.3, per_model.4, per_model.5)),
        agent_share.3) AS total_cost_usd,
    if(sessions > 0, total_cost_usd / sessions, 0) AS avg_cost_per_session,
    if(sessions > 0, quantile(0.5)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p50_session_duration_s,
    if(sessions > 0, quantile(0.95)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p95_session_duration_s,
    if(llm_calls > 0, toFloat64(if({agent:String} = '', call_latency_ms[1], agent_share.5[1])), 0) AS p50_call_latency_ms,
    if(llm_calls > 0, toFloat64(if({agent:String} = '', call_latency_ms[2], agent_share.5[2])), 0) AS p95_call_latency_ms,
    if(llm_calls > 0, if({agent:String} = '', sum(call_errors), agent_share.2) / llm_calls, 0) AS error_rate,
    if({agent:String} = '', sum(tokens), agent_share.4) AS total_tokens
FROM selected;

-- A session's spans in time order, scoped by project like every read (another
-- project's session of the same id never shows). is_transport marks the HTTP client
-- span under an LLM span (the httpx instrumentation's POST), so surfaces can fold it
-- under its call; resend_count > 0 marks a retried attempt.
CREATE OR REPLACE VIEW `${database}`.`session_detail`${on_cluster} AS
SELECT
    Timestamp AS timestamp,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    SpanName AS span_name,
    SessionPath AS path,
    RunId AS run_id,
    AgentId AS agent_id,
    RequestId AS request_id,
    Provider AS provider,
    Model AS model,
    Operation AS operation,
    InputTokens AS input_tokens,
    OutputTokens AS output_tokens,
    CostUsd AS cost_usd,
    Duration / 1e6 AS duration_ms,
    TimeToFirstChunkMs AS time_to_first_chunk_ms,
    StatusCode AS status,
    StatusMessage AS status_message,
    -- an array attribute arrives JSON-encoded from the clickhouseexporter
    if(startsWith(FinishReasons, '['), JSONExtract(FinishReasons, 'Array(String)'),
       if(FinishReasons = '', [], [FinishReasons])) AS finish_reasons,
    InputMessages AS input_messages,
    OutputMessages AS output_messages,
    Project AS project,
    CacheReadTokens AS cached_input_tokens,
    ResendCount AS resend_count,
    IsHttpClient AND ParentSpanId IN (
        SELECT SpanId FROM `${database}`.`${traces_table}_session_spans`
        WHERE SessionId = {session_id:String} AND Project = {project:String} AND IsLlmCall
    ) AS is_transport
FROM `${database}`.`${traces_table}_session_spans`
WHERE SessionId = {session_id:String} AND Project = {project:String}
ORDER BY Timestamp, SpanId;

-- One session's LLM calls by agent, model (the model asked for), path and run: each
-- key's own figures, so each dimension sums to the session's totals (calls with no
-- agent, path or run are under key '').
CREATE OR REPLACE VIEW `${database}`.`session_breakdown`${on_cluster} AS
SELECT
    dimension,
    key,
    countIf(ResendCount = 0) AS llm_calls,
    countIf(ResendCount > 0) AS retries,
    toUInt64(greatest(toInt64(countIf(IsError)) - toInt64(retries), 0)) AS errors,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CacheReadTokens) AS cached_input_tokens,
    sum(CostUsd) AS cost_usd,
    avg(Duration / 1e6) AS avg_latency_ms
FROM `${database}`.`${traces_table}_session_spans`
ARRAY JOIN
    ['agent', 'model', 'path', 'run'] AS dimension,
    [AgentKey, CallModel, SessionPath, RunId] AS key
WHERE SessionId = {session_id:String} AND Project = {project:String} AND IsLlmCall
GROUP BY dimension, key
ORDER BY dimension, cost_usd DESC, key;
