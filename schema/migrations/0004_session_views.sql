-- session views

-- Frozen: released, never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
CREATE VIEW IF NOT EXISTS `${database}`.`session_list`${on_cluster} AS
SELECT session_id, session_name, source, project, user_id, environment, service_name, first_seen, last_seen, duration_s, status, trace_count, llm_calls, runs, agents, models, input_tokens, output_tokens, cost_usd, errors, success_rate, avg_latency_ms, p95_latency_ms
FROM (
SELECT
    SessionId AS session_id, session_name, source, Project AS project, user_id,
    environment, service_name, first_seen, last_seen,
    (toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9 AS duration_s,
    if(last_seen >= now64(9) - toIntervalSecond(${inactivity_timeout}), 'active', 'completed') AS status,
    trace_count, llm_calls, runs, agents, per_model.1 AS models, input_tokens,
    output_tokens, reported_cost + arraySum(arrayMap((m, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0))) / 1e6, per_model.1, per_model.3, per_model.4, per_model.5)) AS cost_usd,
    errors,
    if(llm_calls > 0, (llm_calls - llm_errors) / llm_calls,
       if(spans > 0, (spans - errors) / spans, 1)) AS success_rate,
    if(llm_calls > 0, latency_sum_ms / llm_calls, 0) AS avg_latency_ms,
    if(llm_calls > 0, toFloat64(latency_ms[2]), 0) AS p95_latency_ms
FROM (
    SELECT Project, SessionId,
        argMaxMerge(NameState) AS session_name, argMaxMerge(SourceState) AS source,
        argMaxMerge(UserState) AS user_id, argMaxMerge(EnvironmentState) AS environment,
        argMinMerge(ServiceState) AS service_name,
        min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        uniqExactMerge(Traces) AS trace_count, uniqExactMerge(Runs) AS runs,
        arraySort(groupUniqArrayArray(Agents)) AS agents,
        sum(Spans) AS spans, sum(Errors) AS errors, sum(LlmCalls) AS llm_calls,
        sum(LlmErrors) AS llm_errors, sum(InputTokensSum) AS input_tokens,
        sum(OutputTokensSum) AS output_tokens, sum(ReportedCostSum) AS reported_cost,
        sum(LatencySumMs) AS latency_sum_ms,
        quantilesMerge(0.5, 0.95)(LatencyMs) AS latency_ms,
        sumMap(Models) AS per_model
    FROM `${database}`.`${traces_table}_sessions`
        GROUP BY Project, SessionId
)
);

-- A page is chosen on the light columns of the rollup (times, user, environment);
-- only then are the bulky states of its sessions (traces, latency sample, models,
-- prices) read, through the primary key.
CREATE VIEW IF NOT EXISTS `${database}`.`session_list_page`${on_cluster} AS
SELECT session_id, session_name, source, project, user_id, environment, service_name, first_seen, last_seen, duration_s, status, trace_count, llm_calls, runs, agents, models, input_tokens, output_tokens, cost_usd, errors, success_rate, avg_latency_ms, p95_latency_ms
FROM (
SELECT
    SessionId AS session_id, session_name, source, Project AS project, user_id,
    environment, service_name, first_seen, last_seen,
    (toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9 AS duration_s,
    if(last_seen >= now64(9) - toIntervalSecond(${inactivity_timeout}), 'active', 'completed') AS status,
    trace_count, llm_calls, runs, agents, per_model.1 AS models, input_tokens,
    output_tokens, reported_cost + arraySum(arrayMap((m, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0))) / 1e6, per_model.1, per_model.3, per_model.4, per_model.5)) AS cost_usd,
    errors,
    if(llm_calls > 0, (llm_calls - llm_errors) / llm_calls,
       if(spans > 0, (spans - errors) / spans, 1)) AS success_rate,
    if(llm_calls > 0, latency_sum_ms / llm_calls, 0) AS avg_latency_ms,
    if(llm_calls > 0, toFloat64(latency_ms[2]), 0) AS p95_latency_ms
FROM (
    SELECT Project, SessionId,
        argMaxMerge(NameState) AS session_name, argMaxMerge(SourceState) AS source,
        argMaxMerge(UserState) AS user_id, argMaxMerge(EnvironmentState) AS environment,
        argMinMerge(ServiceState) AS service_name,
        min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        uniqExactMerge(Traces) AS trace_count, uniqExactMerge(Runs) AS runs,
        arraySort(groupUniqArrayArray(Agents)) AS agents,
        sum(Spans) AS spans, sum(Errors) AS errors, sum(LlmCalls) AS llm_calls,
        sum(LlmErrors) AS llm_errors, sum(InputTokensSum) AS input_tokens,
        sum(OutputTokensSum) AS output_tokens, sum(ReportedCostSum) AS reported_cost,
        sum(LatencySumMs) AS latency_sum_ms,
        quantilesMerge(0.5, 0.95)(LatencyMs) AS latency_ms,
        sumMap(Models) AS per_model
    FROM `${database}`.`${traces_table}_sessions`
    WHERE (Project, SessionId) IN (SELECT Project, SessionId FROM `${database}`.`${traces_table}_sessions`
GROUP BY Project, SessionId
HAVING ({project:String} = '' OR Project = {project:String}) AND ({user:String} = '' OR argMaxMerge(UserState) = {user:String}) AND ({environment:String} = '' OR argMaxMerge(EnvironmentState) = {environment:String}) AND ({status:String} = '' OR if(max(LastSeen) >= now64(9) - toIntervalSecond(${inactivity_timeout}), 'active', 'completed') = {status:String}) AND ({before:String} = '' OR max(LastSeen) < parseDateTime64BestEffortOrNull({before:String}, 9))
ORDER BY max(LastSeen) DESC, SessionId DESC
LIMIT {limit:UInt32})
    GROUP BY Project, SessionId
)
)
ORDER BY last_seen DESC, session_id DESC;

-- Sessions that overlap [since, until] count whole (their calls, cost, latency).
-- Per-session figures come from one light GROUP BY; the latency sample and the
-- per-model tokens are merged across the selected sessions without grouping by session.
-- A filter's state is merged only when the filter is given (-If on the parameter).
CREATE VIEW IF NOT EXISTS `${database}`.`session_vitals`${on_cluster} AS
WITH selected_keys AS (
    SELECT Project, SessionId FROM `${database}`.`${traces_table}_sessions`
    GROUP BY Project, SessionId
    HAVING ({since:String} = '' OR max(LastSeen) >= parseDateTime64BestEffortOrNull({since:String}, 9)) AND ({until:String} = '' OR min(FirstSeen) <= parseDateTime64BestEffortOrNull({until:String}, 9)) AND ({project:String} = '' OR Project = {project:String}) AND ({environment:String} = '' OR argMaxMergeIf(EnvironmentState, {environment:String} != '') = {environment:String}) AND ({service:String} = '' OR argMinMergeIf(ServiceState, {service:String} != '') = {service:String}) AND ({agent:String} = '' OR has(groupUniqArrayArrayIf(Agents, {agent:String} != ''), {agent:String})) AND ({user:String} = '' OR argMaxMergeIf(UserState, {user:String} != '') = {user:String})
),
selected AS (
    SELECT Project, SessionId, min(FirstSeen) AS first_seen, max(LastSeen) AS last_seen,
        argMaxMerge(UserState) AS user_id, sum(LlmCalls) AS calls,
        sum(LlmErrors) AS call_errors, sum(ReportedCostSum) AS reported_cost,
        sum(InputTokensSum) + sum(OutputTokensSum) AS tokens
    FROM `${database}`.`${traces_table}_sessions`
    GROUP BY Project, SessionId
    HAVING ({since:String} = '' OR max(LastSeen) >= parseDateTime64BestEffortOrNull({since:String}, 9)) AND ({until:String} = '' OR min(FirstSeen) <= parseDateTime64BestEffortOrNull({until:String}, 9)) AND ({project:String} = '' OR Project = {project:String}) AND ({environment:String} = '' OR argMaxMergeIf(EnvironmentState, {environment:String} != '') = {environment:String}) AND ({service:String} = '' OR argMinMergeIf(ServiceState, {service:String} != '') = {service:String}) AND ({agent:String} = '' OR has(groupUniqArrayArrayIf(Agents, {agent:String} != ''), {agent:String})) AND ({user:String} = '' OR argMaxMergeIf(UserState, {user:String} != '') = {user:String})
),
(SELECT quantilesMerge(0.5, 0.95)(LatencyMs) FROM `${database}`.`${traces_table}_sessions`
    WHERE (Project, SessionId) IN selected_keys SETTINGS use_index_for_in_with_subqueries = 0) AS call_latency_ms,
(SELECT (groupArray(m), groupArray(n), groupArray(i), groupArray(c), groupArray(o))
    FROM (SELECT m, sum(n) AS n, sum(i) AS i, sum(c) AS c, sum(o) AS o
        FROM (SELECT Models FROM `${database}`.`${traces_table}_sessions` WHERE (Project, SessionId) IN selected_keys)
        ARRAY JOIN Models.1 AS m, Models.2 AS n, Models.3 AS i, Models.4 AS c, Models.5 AS o
        GROUP BY m) SETTINGS use_index_for_in_with_subqueries = 0) AS per_model
SELECT
    count() AS sessions,
    countIf(if(last_seen >= now64(9) - toIntervalSecond(${inactivity_timeout}), 'active', 'completed') = 'active') AS active_sessions,
    uniqExactIf(user_id, user_id != '') AS users,
    sum(calls) AS llm_calls,
    if(sessions > 0, llm_calls / sessions, 0) AS avg_calls_per_session,
    sum(reported_cost) + arraySum(arrayMap((m, i, c, o) -> (greatest(toInt64(i) - toInt64(c), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + c * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + o * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(m), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(m), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(m), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0))) / 1e6, per_model.1, per_model.3, per_model.4, per_model.5)) AS total_cost_usd,
    if(sessions > 0, total_cost_usd / sessions, 0) AS avg_cost_per_session,
    if(sessions > 0, quantile(0.5)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p50_session_duration_s,
    if(sessions > 0, quantile(0.95)((toUnixTimestamp64Nano(last_seen) - toUnixTimestamp64Nano(first_seen)) / 1e9), 0) AS p95_session_duration_s,
    if(llm_calls > 0, toFloat64(call_latency_ms[1]), 0) AS p50_call_latency_ms,
    if(llm_calls > 0, toFloat64(call_latency_ms[2]), 0) AS p95_call_latency_ms,
    if(llm_calls > 0, sum(call_errors) / llm_calls, 0) AS error_rate,
    sum(tokens) AS total_tokens
FROM selected;

CREATE VIEW IF NOT EXISTS `${database}`.`session_detail`${on_cluster} AS
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
    ifNull(ReportedCostUsd, if(IsLlmCall, (greatest(toInt64(InputTokens) - toInt64(CacheReadTokens), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + CacheReadTokens * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + OutputTokens * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0))) / 1e6, 0)) AS cost_usd,
    Duration / 1e6 AS duration_ms,
    TimeToFirstChunkMs AS time_to_first_chunk_ms,
    StatusCode AS status,
    StatusMessage AS status_message,
    if(startsWith(FinishReasons, '['), JSONExtract(FinishReasons, 'Array(String)'),
       if(FinishReasons = '', [], [FinishReasons])) AS finish_reasons,
    InputMessages AS input_messages,
    OutputMessages AS output_messages,
    Project AS project
FROM `${database}`.`${traces_table}_session_spans`
WHERE SessionId = {session_id:String}
ORDER BY Timestamp, SpanId;

CREATE VIEW IF NOT EXISTS `${database}`.`unpriced_models`${on_cluster} AS
SELECT model, calls FROM (
    SELECT m.1 AS model, m.2 AS calls
    FROM (SELECT sumMap(Models) AS t FROM `${database}`.`${traces_table}_sessions`)
    ARRAY JOIN arrayZip(t.1, t.2) AS m)
WHERE NOT dictHas('${database}.model_prices_dict', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))))
ORDER BY calls DESC, model;
