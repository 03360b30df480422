-- otel_traces (clickhouseexporter-compatible) with session columns

-- Frozen: released, never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
-- Column for column the OpenTelemetry Collector clickhouseexporter's traces table, plus
-- session columns MATERIALIZED from the attribute maps, so rows written by any writer
-- (a stock OTel Collector included) get them. Attribute names and aliases come from
-- sessionlens/conventions.py (tests/test_schema_migrate.py checks they still agree).
-- A span with no session id at all gets a session per trace (SessionId = TraceId).
CREATE TABLE IF NOT EXISTS `${database}`.`${traces_table}`${on_cluster} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    Project LowCardinality(String) MATERIALIZED ResourceAttributes['sessionlens.project'],
    SessionId String MATERIALIZED if(if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'session.id'), 'session.id', mapContains(ResourceAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(ResourceAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(ResourceAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(ResourceAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')]) != '', if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'session.id'), 'session.id', mapContains(ResourceAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(ResourceAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(ResourceAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(ResourceAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')]), TraceId),
    SessionSource LowCardinality(String) MATERIALIZED multiIf(if(SpanAttributes['sessionlens.session.source'] != '', SpanAttributes['sessionlens.session.source'], ResourceAttributes['sessionlens.session.source']) != '', if(SpanAttributes['sessionlens.session.source'] != '', SpanAttributes['sessionlens.session.source'], ResourceAttributes['sessionlens.session.source']), if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'session.id'), 'session.id', mapContains(SpanAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(SpanAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(SpanAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'session.id'), 'session.id', mapContains(ResourceAttributes, 'gen_ai.conversation.id'), 'gen_ai.conversation.id', mapContains(ResourceAttributes, 'langfuse.session.id'), 'langfuse.session.id', mapContains(ResourceAttributes, 'traceloop.association.properties.session_id'), 'traceloop.association.properties.session_id', mapContains(ResourceAttributes, 'ai.telemetry.metadata.sessionId'), 'ai.telemetry.metadata.sessionId', 'session.id')]) != '', 'explicit', 'auto:trace'),
    SessionName String MATERIALIZED if(SpanAttributes['sessionlens.session.name'] != '', SpanAttributes['sessionlens.session.name'], ResourceAttributes['sessionlens.session.name']),
    SessionPath String MATERIALIZED if(SpanAttributes['sessionlens.session.path'] != '', SpanAttributes['sessionlens.session.path'], ResourceAttributes['sessionlens.session.path']),
    UserId String MATERIALIZED if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'user.id'), 'user.id', mapContains(SpanAttributes, 'enduser.id'), 'enduser.id', mapContains(SpanAttributes, 'langfuse.user.id'), 'langfuse.user.id', mapContains(SpanAttributes, 'gen_ai.user'), 'gen_ai.user', mapContains(SpanAttributes, 'traceloop.association.properties.user_id'), 'traceloop.association.properties.user_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.userId'), 'ai.telemetry.metadata.userId', 'user.id')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'user.id'), 'user.id', mapContains(SpanAttributes, 'enduser.id'), 'enduser.id', mapContains(SpanAttributes, 'langfuse.user.id'), 'langfuse.user.id', mapContains(SpanAttributes, 'gen_ai.user'), 'gen_ai.user', mapContains(SpanAttributes, 'traceloop.association.properties.user_id'), 'traceloop.association.properties.user_id', mapContains(SpanAttributes, 'ai.telemetry.metadata.userId'), 'ai.telemetry.metadata.userId', 'user.id')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'user.id'), 'user.id', mapContains(ResourceAttributes, 'enduser.id'), 'enduser.id', mapContains(ResourceAttributes, 'langfuse.user.id'), 'langfuse.user.id', mapContains(ResourceAttributes, 'gen_ai.user'), 'gen_ai.user', mapContains(ResourceAttributes, 'traceloop.association.properties.user_id'), 'traceloop.association.properties.user_id', mapContains(ResourceAttributes, 'ai.telemetry.metadata.userId'), 'ai.telemetry.metadata.userId', 'user.id')]),
    AgentId String MATERIALIZED if(SpanAttributes['gen_ai.agent.id'] != '', SpanAttributes['gen_ai.agent.id'], ResourceAttributes['gen_ai.agent.id']),
    AgentName String MATERIALIZED if(SpanAttributes['gen_ai.agent.name'] != '', SpanAttributes['gen_ai.agent.name'], ResourceAttributes['gen_ai.agent.name']),
    RunId String MATERIALIZED if(SpanAttributes['sessionlens.run.id'] != '', SpanAttributes['sessionlens.run.id'], ResourceAttributes['sessionlens.run.id']),
    RequestId String MATERIALIZED if(SpanAttributes['sessionlens.request.id'] != '', SpanAttributes['sessionlens.request.id'], ResourceAttributes['sessionlens.request.id']),
    Environment LowCardinality(String) MATERIALIZED if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'deployment.environment.name'), 'deployment.environment.name', mapContains(SpanAttributes, 'deployment.environment'), 'deployment.environment', 'deployment.environment.name')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'deployment.environment.name'), 'deployment.environment.name', mapContains(SpanAttributes, 'deployment.environment'), 'deployment.environment', 'deployment.environment.name')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'deployment.environment.name'), 'deployment.environment.name', mapContains(ResourceAttributes, 'deployment.environment'), 'deployment.environment', 'deployment.environment.name')]),
    Provider LowCardinality(String) MATERIALIZED if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.provider.name'), 'gen_ai.provider.name', mapContains(SpanAttributes, 'gen_ai.system'), 'gen_ai.system', 'gen_ai.provider.name')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.provider.name'), 'gen_ai.provider.name', mapContains(SpanAttributes, 'gen_ai.system'), 'gen_ai.system', 'gen_ai.provider.name')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'gen_ai.provider.name'), 'gen_ai.provider.name', mapContains(ResourceAttributes, 'gen_ai.system'), 'gen_ai.system', 'gen_ai.provider.name')]),
    Operation LowCardinality(String) MATERIALIZED if(SpanAttributes['gen_ai.operation.name'] != '', SpanAttributes['gen_ai.operation.name'], ResourceAttributes['gen_ai.operation.name']),
    Model LowCardinality(String) MATERIALIZED if(if(SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'], ResourceAttributes['gen_ai.response.model']) != '', if(SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'], ResourceAttributes['gen_ai.response.model']), if(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'], ResourceAttributes['gen_ai.request.model'])),
    InputTokens UInt64 MATERIALIZED toUInt64OrZero(if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'), 'gen_ai.usage.input_tokens', mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens'), 'gen_ai.usage.prompt_tokens', mapContains(SpanAttributes, 'llm.token_count.prompt'), 'llm.token_count.prompt', 'gen_ai.usage.input_tokens')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'), 'gen_ai.usage.input_tokens', mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens'), 'gen_ai.usage.prompt_tokens', mapContains(SpanAttributes, 'llm.token_count.prompt'), 'llm.token_count.prompt', 'gen_ai.usage.input_tokens')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'gen_ai.usage.input_tokens'), 'gen_ai.usage.input_tokens', mapContains(ResourceAttributes, 'gen_ai.usage.prompt_tokens'), 'gen_ai.usage.prompt_tokens', mapContains(ResourceAttributes, 'llm.token_count.prompt'), 'llm.token_count.prompt', 'gen_ai.usage.input_tokens')])),
    OutputTokens UInt64 MATERIALIZED toUInt64OrZero(if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'), 'gen_ai.usage.output_tokens', mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens'), 'gen_ai.usage.completion_tokens', mapContains(SpanAttributes, 'llm.token_count.completion'), 'llm.token_count.completion', 'gen_ai.usage.output_tokens')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'), 'gen_ai.usage.output_tokens', mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens'), 'gen_ai.usage.completion_tokens', mapContains(SpanAttributes, 'llm.token_count.completion'), 'llm.token_count.completion', 'gen_ai.usage.output_tokens')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'gen_ai.usage.output_tokens'), 'gen_ai.usage.output_tokens', mapContains(ResourceAttributes, 'gen_ai.usage.completion_tokens'), 'gen_ai.usage.completion_tokens', mapContains(ResourceAttributes, 'llm.token_count.completion'), 'llm.token_count.completion', 'gen_ai.usage.output_tokens')])),
    CacheReadTokens UInt64 MATERIALIZED toUInt64OrZero(if(SpanAttributes['gen_ai.usage.cache_read.input_tokens'] != '', SpanAttributes['gen_ai.usage.cache_read.input_tokens'], ResourceAttributes['gen_ai.usage.cache_read.input_tokens'])),
    ReportedCostUsd Nullable(Float64) MATERIALIZED toFloat64OrNull(if(SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.cost'), 'gen_ai.usage.cost', mapContains(SpanAttributes, 'llm.cost.total'), 'llm.cost.total', 'gen_ai.usage.cost')] != '', SpanAttributes[multiIf(mapContains(SpanAttributes, 'gen_ai.usage.cost'), 'gen_ai.usage.cost', mapContains(SpanAttributes, 'llm.cost.total'), 'llm.cost.total', 'gen_ai.usage.cost')], ResourceAttributes[multiIf(mapContains(ResourceAttributes, 'gen_ai.usage.cost'), 'gen_ai.usage.cost', mapContains(ResourceAttributes, 'llm.cost.total'), 'llm.cost.total', 'gen_ai.usage.cost')])),
    IsLlmCall UInt8 MATERIALIZED Operation IN ('chat', 'embeddings', 'generate_content', 'responses', 'text_completion') OR (NOT Operation IN ('create_agent', 'execute_tool', 'invoke_agent') AND InputTokens + OutputTokens > 0),
    IsError UInt8 MATERIALIZED StatusCode IN ('Error', 'STATUS_CODE_ERROR'),
    -- The span's own cost wins; otherwise priced at read time (ALIAS), so a price
    -- updated later applies to rows already stored.
    CostUsd Float64 ALIAS ifNull(ReportedCostUsd, if(IsLlmCall, (greatest(toInt64(InputTokens) - toInt64(CacheReadTokens), 0) * dictGetOrDefault('${database}.model_prices_dict', 'input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + CacheReadTokens * dictGetOrDefault('${database}.model_prices_dict', 'cached_input_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0)) + OutputTokens * dictGetOrDefault('${database}.model_prices_dict', 'output_per_mtok', tuple(if(dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(lower(Model), '^.*/', ''))) OR NOT dictHas('${database}.model_prices_dict', tuple(replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), replaceRegexpOne(lower(Model), '^.*/', ''), replaceRegexpOne(replaceRegexpOne(lower(Model), '^.*/', ''), '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|@[0-9]{8})$', ''))), toFloat64(0))) / 1e6, 0)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,
    -- session_detail finds a session's granules inside its time range with this
    INDEX idx_session_id SessionId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = ${engine:MergeTree}
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
${ttl:Timestamp}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1${dedup_setting};

CREATE TABLE IF NOT EXISTS `${database}`.`${traces_table}_trace_id_ts`${on_cluster} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = ${engine:MergeTree}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
${ttl:Start}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `${database}`.`${traces_table}_trace_id_ts_mv`${on_cluster}
TO `${database}`.`${traces_table}_trace_id_ts`
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM `${database}`.`${traces_table}`
WHERE TraceId != ''
GROUP BY TraceId;
