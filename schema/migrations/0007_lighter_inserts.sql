-- lighter insert-time work: request model and resend count computed once per span, a cheaper policy test, no unread CallsToPrice state; 30-day vitals in one pass over the rollup

-- Frozen once released: never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
--
-- Nothing any view answers changes (tests/test_schema_insert_work.py holds migration 6's
-- views and this one's to the same answers on the same spans); only where the work is done:
--   * RequestModel and ResendCount were ALIAS columns of otel_traces, so each
--     materialized view that reads them (the session rollup and the session-ordered copy)
--     looked them up in the attribute map again. Stored, they are computed once per span;
--     parts written before this migration compute them from the same expression when read.
--   * IsPolicyEvent parsed every LLM span's finish reasons as JSON. A policy reason is
--     one of a few words, so a span whose finish reasons contain none of them (ASCII case
--     folded, as lower() folds) and no JSON escape cannot be one: the JSON is parsed only
--     for the rest (short-circuit AND), with the same answer.
--   * CallsToPrice (per model, calls needing a price) has been read by no view since
--     migration 6 replaced it with TokensToPrice; the rollup stops computing it (the column
--     stays, empty in new rows: migration 6's view, replayed when a missing view is
--     recreated, still names it).
--   * session_vitals took the call latency quantiles from a second scan of the rollup for
--     the selected sessions; each selected session's state is merged in the pass that
--     selects it instead. Without an agent filter it no longer builds the set of selected
--     sessions for the agent's share, which it does not read.
-- Every statement can run again (OR REPLACE, MODIFY).

ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    MODIFY COLUMN RequestModel String MATERIALIZED coalesce(
        nullIf(SpanAttributes['gen_ai.request.model'], ''),
        ResourceAttributes['gen_ai.request.model']),
    -- the retry number of an attempt (0: a call's first attempt)
    MODIFY COLUMN ResendCount UInt64 MATERIALIZED
        toUInt64OrZero(SpanAttributes['http.request.resend_count']),
    -- a call a provider's policy stopped: its finish reason, or a policy error
    MODIFY COLUMN IsPolicyEvent UInt8 ALIAS IsLlmCall AND (
        ((multiSearchAnyCaseInsensitive(SpanAttributes['gen_ai.response.finish_reasons'],
                ['blocklist', 'content_filter', 'prohibited_content', 'refusal', 'safety', 'spii'])
            OR position(SpanAttributes['gen_ai.response.finish_reasons'], '\\') > 0)
         AND hasAny(
            arrayMap(r -> lower(r), if(
                startsWith(SpanAttributes['gen_ai.response.finish_reasons'], '['),
                JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)'),
                [SpanAttributes['gen_ai.response.finish_reasons']])),
            ['blocklist', 'content_filter', 'prohibited_content', 'refusal', 'safety', 'spii']))
        OR (IsError AND match(
            lower(concat(StatusMessage, ' ', SpanAttributes['error.type'])),
            'content_policy|content_filter|content_management_policy|responsibleaipolicyviolation')));

-- The rollup's view as migration 6's, without CallsToPrice.
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
    sumMapIf(([(toString(Provider), toString(Model), RequestModel, toDate(Timestamp, 'UTC'))],
        [toUInt64(1)], [InputTokens], [CacheReadTokens], [CacheWriteTokens], [OutputTokens]),
        IsLlmCall AND ReportedCostUsd IS NULL AND InputTokens + OutputTokens > 0) AS TokensToPrice
FROM `${database}`.`${traces_table}`
GROUP BY Project, SessionId;

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
        sum(InputTokensSum) + sum(OutputTokensSum) AS tokens,
        -- each session's latency state, merged again over the sessions below (one pass
        -- over the rollup instead of a second scan of it for the selected keys)
        quantilesMergeState(0.5, 0.95)(LatencyMs) AS latency
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
        -- with agent='' no set of keys is built for a share nobody reads
        AND (Project, SessionId) IN (SELECT Project, SessionId FROM selected_keys WHERE {agent:String} != '')) AS agent_share
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
    if(llm_calls > 0, toFloat64(if({agent:String} = '', quantilesMerge(0.5, 0.95)(latency)[1], agent_share.5[1])), 0) AS p50_call_latency_ms,
    if(llm_calls > 0, toFloat64(if({agent:String} = '', quantilesMerge(0.5, 0.95)(latency)[2], agent_share.5[2])), 0) AS p95_call_latency_ms,
    if(llm_calls > 0, if({agent:String} = '', sum(call_errors), agent_share.2) / llm_calls, 0) AS error_rate,
    if({agent:String} = '', sum(tokens), agent_share.4) AS total_tokens
FROM selected;
