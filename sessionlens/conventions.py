"""The attribute names sessionlens reads and writes: the one place that owns them.

Canonical keys follow the OpenTelemetry semantic conventions where one exists and
use the ``sessionlens.*`` namespace otherwise. Every component — the
instrumentation, the collector's processors, the schema's derived columns — imports
its names from here, so a new alias or header is added once.
"""

from __future__ import annotations

from typing import Final

# --- canonical keys -------------------------------------------------------------------

SESSION_ID: Final = "session.id"
SESSION_NAME: Final = "sessionlens.session.name"
SESSION_PATH: Final = "sessionlens.session.path"
SESSION_SOURCE: Final = "sessionlens.session.source"
USER_ID: Final = "user.id"
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_NAME: Final = "gen_ai.agent.name"
RUN_ID: Final = "sessionlens.run.id"
REQUEST_ID: Final = "sessionlens.request.id"
ENVIRONMENT: Final = "deployment.environment.name"
PROJECT: Final = "sessionlens.project"
"""Resource attribute naming the project a span belongs to (set by the collector's auth)."""
PROPERTY_PREFIX: Final = "sessionlens.property."

PROVIDER: Final = "gen_ai.provider.name"
OPERATION: Final = "gen_ai.operation.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
COST: Final = "gen_ai.usage.cost"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_TOP_K: Final = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
HTTP_RESEND_COUNT: Final = "http.request.resend_count"
"""On a retried attempt of an LLM call: its number (1 for the first retry); a retry counts
in ``retries``, never as another call."""
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_METHOD_OLD: Final = "http.method"
"""The pre-stable HTTP semantic conventions' name of ``http.request.method``."""
LLM_REQUEST_TYPE: Final = "llm.request.type"
"""OpenLLMetry's marker of an LLM call span (its spans may lack ``gen_ai.operation.name``)."""
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
ERROR_TYPE: Final = "error.type"

SERVICE_NAME: Final = "service.name"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
HOST_NAME: Final = "host.name"
PROCESS_PID: Final = "process.pid"
CLIENT_ADDRESS: Final = "client.address"
USER_AGENT: Final = "user_agent.original"
SERVES_REQUESTS: Final = "sessionlens.process.serves_requests"
"""``true`` on the spans of a process that has started a local root SERVER span: it serves
requests for many people, so the collector never keys its spans by instance
(docs/sessions.md, "Never merge strangers")."""
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

HTTP_SERVER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    CLIENT_ADDRESS: ("http.client_ip", "net.peer.ip"),
    USER_AGENT: ("http.user_agent",),
}
"""Names of the HTTP semantic conventions before v1.20 (what HTTP server instrumentations
emit unless ``OTEL_SEMCONV_STABILITY_OPT_IN=http``), read on SERVER spans only: on a
client span ``net.peer.ip`` is the server's address, not a visitor's."""

IDENTITY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    USER_ID: (USER_ID, "enduser.id"),
    CLIENT_ADDRESS: (CLIENT_ADDRESS, *HTTP_SERVER_ALIASES[CLIENT_ADDRESS]),
    USER_AGENT: (USER_AGENT, *HTTP_SERVER_ALIASES[USER_AGENT]),
}
"""Who a request is from, as a web framework's SERVER span records it: canonical key ->
the names it is read from, first found wins. The instrumentation copies them from the
local root SERVER span onto the spans of its request."""

# --- values -----------------------------------------------------------------------------

POLICY_FINISH_REASONS: Final = frozenset(
    {"content_filter", "refusal", "safety", "prohibited_content", "blocklist", "spii"}
)
"""Finish reasons (lower-cased) of a call a provider's policy stopped: OpenAI/Azure
``content_filter``, Anthropic ``refusal``, Gemini ``SAFETY``/``PROHIBITED_CONTENT``/``BLOCKLIST``/
``SPII``; each counts in ``policy_events``."""

SOURCE_EXPLICIT: Final = "explicit"
SOURCE_AUTO_USER: Final = "auto:user"
SOURCE_AUTO_FINGERPRINT: Final = "auto:fingerprint"
SOURCE_AUTO_INSTANCE: Final = "auto:instance"
SOURCE_AUTO_TRACE: Final = "auto:trace"
SESSION_SOURCES: Final = (
    SOURCE_EXPLICIT,
    SOURCE_AUTO_USER,
    SOURCE_AUTO_FINGERPRINT,
    SOURCE_AUTO_INSTANCE,
    SOURCE_AUTO_TRACE,
)

LLM_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "responses"}
)
"""``gen_ai.operation.name`` values of a model inference: the spans that carry tokens and cost."""
AGENT_OPERATIONS: Final = frozenset({"invoke_agent", "create_agent", "execute_tool"})
"""Operations that wrap LLM calls; they never count tokens or cost of their own."""

# --- aliases accepted on incoming spans (alias -> canonical), in order of preference ---

ALIASES: Final[dict[str, tuple[str, ...]]] = {
    SESSION_ID: (
        "gen_ai.conversation.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
        "ai.telemetry.metadata.sessionId",
    ),
    USER_ID: (
        "enduser.id",
        "langfuse.user.id",
        "gen_ai.user",
        "traceloop.association.properties.user_id",
        "ai.telemetry.metadata.userId",
    ),
    ENVIRONMENT: ("deployment.environment",),
    PROVIDER: ("gen_ai.system",),
    INPUT_TOKENS: ("gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    OUTPUT_TOKENS: ("gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    COST: ("llm.cost.total",),
}
"""For each canonical key, the other names other instrumentations use for it."""

# --- request headers adopted by the instrumentation (lower-cased header -> key) -------

HEADER_ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    SESSION_ID: (
        "x-session-id",
        "helicone-session-id",
        "alephant-session-id",
        "sessionid",
        "session-id",
        "session_id",
        "x-trace-session-id",
    ),
    SESSION_NAME: ("x-session-name", "helicone-session-name", "alephant-session-name"),
    SESSION_PATH: ("x-session-path", "helicone-session-path", "alephant-session-path"),
    USER_ID: ("x-end-user-id", "helicone-user-id", "x-user-id"),
    AGENT_ID: ("alephant-agent-id", "x-agent-id"),
    RUN_ID: ("alephant-run-id", "x-run-id"),
    REQUEST_ID: ("x-request-id",),
    ENVIRONMENT: ("x-environment",),
}
"""For each canonical key, the request headers (lower case) that carry it, first wins."""

PROPERTY_HEADER_PREFIXES: Final = ("helicone-property-", "x-sessionlens-property-")
"""A header ``<prefix><Name>`` becomes the attribute ``sessionlens.property.<name>``."""

HEADER_TO_ATTRIBUTE: Final[dict[str, str]] = {
    header: key for key, headers in HEADER_ATTRIBUTES.items() for header in headers
}
"""Flat lookup: lower-cased header name -> canonical attribute key."""


def property_attribute(header: str) -> str | None:
    """The ``sessionlens.property.*`` key for a property header, or None if it is not one."""
    lowered = header.lower()
    for prefix in PROPERTY_HEADER_PREFIXES:
        if lowered.startswith(prefix) and len(lowered) > len(prefix):
            return PROPERTY_PREFIX + lowered[len(prefix) :]
    return None


# --- attributes the collector's processors add ------------------------------------------

TRUNCATED_ATTRIBUTES: Final = "sessionlens.truncated_attributes"
"""How many attributes of the span the collector truncated to its size limits (value or key)."""
TRUNCATED_FIELDS: Final = "sessionlens.truncated_fields"
"""How many of the span's other strings the collector truncated to its size limits: its name,
status message, trace state, scope name and version, and its events' names and links'
trace states."""
DROPPED_EVENTS: Final = "sessionlens.dropped_events_count"
"""How many events of the span the collector dropped beyond its count limit (OTLP's
``dropped_events_count``)."""
DROPPED_LINKS: Final = "sessionlens.dropped_links_count"
"""How many links of the span the collector dropped beyond its count limit (OTLP's
``dropped_links_count``)."""
DROPPED_ATTRIBUTES: Final = "sessionlens.dropped_attributes_count"
"""How many attributes the collector dropped beyond its count limit (OTLP's
``dropped_attributes_count``, which the clickhouseexporter table has no column for)."""
INVALID_NUMBERS: Final = "sessionlens.invalid_numbers"
"""The token counts and costs the collector removed because no sum could use them: a JSON
object of attribute name → reason (``NaN``, ``negative``, ``out of range``, ``not a
number``, ``not a decimal integer``); its size counts them."""

TOKEN_COUNTS: Final = (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    CACHE_READ_INPUT_TOKENS,
    CACHE_CREATION_INPUT_TOKENS,
    REASONING_OUTPUT_TOKENS,
)
"""Attributes holding a count of tokens: decimal integers from 0 to ``MAX_TOKEN_COUNT``."""
MAX_TOKEN_COUNT: Final = 2**63 - 1
"""The largest token count kept (Int64): beyond it a count is junk, not a measurement."""
MAX_COST_USD: Final = 1e12
"""The largest ``gen_ai.usage.cost`` kept, in USD: far beyond any one call, and small enough
that no sum of such costs becomes infinite."""

# --- names of other instrumentations and deprecated GenAI names (normalize processor) ---

_PROVIDER_VALUES: Final[dict[str, str]] = {
    # deprecated gen_ai.system values -> current gen_ai.provider.name values
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "watsonx": "ibm.watsonx.ai",
    "xai": "x_ai",
    # OpenLLMetry, OpenInference and Vercel AI spellings (looked up lower-cased)
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "google": "gcp.gemini",
    "vertexai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
}

_OPENINFERENCE_KINDS: Final[dict[str, str]] = {
    "llm": "chat",
    "embedding": "embeddings",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    # kinds that are no GenAI operation: keep the attribute, set no operation
    "chain": "",
    "retriever": "",
    "reranker": "",
    "guardrail": "",
    "evaluator": "",
    "unknown": "",
}

INSTRUMENTATION_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    PROVIDER: ("llm.provider", "llm.system", "ai.model.provider"),
    OPERATION: ("llm.request.type", "openinference.span.kind", "langfuse.observation.type"),
    REQUEST_MODEL: ("llm.model_name", "ai.model.id", "langfuse.observation.model.name"),
    RESPONSE_MODEL: ("ai.response.model",),
    CACHE_READ_INPUT_TOKENS: (
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    CACHE_CREATION_INPUT_TOKENS: (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    ENVIRONMENT: ("langfuse.environment",),
    "gen_ai.request.seed": ("gen_ai.openai.request.seed",),
    "gen_ai.output.type": ("gen_ai.openai.request.response_format",),
    "openai.request.service_tier": ("gen_ai.openai.request.service_tier",),
    "openai.response.service_tier": ("gen_ai.openai.response.service_tier",),
    "openai.response.system_fingerprint": ("gen_ai.openai.response.system_fingerprint",),
}
"""Beyond ``ALIASES``: names the OpenLLMetry, OpenInference, Vercel AI, Langfuse
and Anthropic SDK instrumentations use, and GenAI attributes the semantic conventions
renamed. Same shape as ``ALIASES``. (Vercel AI's ``ai.usage.*`` is left out on purpose: it
sits on the wrapping ``ai.generateText`` span as well, so it would count tokens twice.)"""

VALUE_ALIASES: Final[dict[str, dict[str, str]]] = {
    "gen_ai.system": _PROVIDER_VALUES,
    "llm.provider": _PROVIDER_VALUES,
    "llm.system": _PROVIDER_VALUES,
    "ai.model.provider": _PROVIDER_VALUES,
    "llm.request.type": {
        "chat": "chat",
        "completion": "text_completion",
        "embedding": "embeddings",
        "rerank": "",
        "unknown": "",
    },
    "openinference.span.kind": _OPENINFERENCE_KINDS,
    "langfuse.observation.type": {
        "generation": "chat",
        "embedding": "embeddings",
        "agent": "invoke_agent",
        "tool": "execute_tool",
        "span": "",
        "event": "",
        "chain": "",
        "retriever": "",
        "evaluator": "",
        "guardrail": "",
    },
    "gen_ai.openai.request.response_format": {
        "text": "text",
        "json_object": "json",
        "json_schema": "json",
    },
}
"""Value renames for an alias, keyed by the alias (looked up lower-cased, then by the part
before the first dot, as in Vercel AI's ``openai.chat``). A value not listed is copied as
it is; a value mapped to ``""`` sets no canonical attribute."""

PROPERTY_ALIAS_PREFIXES: Final = ("traceloop.association.properties.", "ai.telemetry.metadata.")
"""Where OpenLLMetry and Vercel AI put an application's own metadata: ``<prefix><name>``
is copied to ``sessionlens.property.<name>`` (names the alias tables map are left out)."""

LANGFUSE_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
"""Langfuse SDK: JSON object of token counts; ``input`` excludes cached input tokens."""
LANGFUSE_USAGE_INPUT: Final = "input"
LANGFUSE_USAGE_OUTPUT: Final = "output"
LANGFUSE_USAGE_CACHED: Final = ("input_cached_tokens", "cache_read_input_tokens")
LANGFUSE_COST_DETAILS: Final = "langfuse.observation.cost_details"
"""Langfuse SDK: JSON object of costs in USD; ``total`` is the call's cost."""
LANGFUSE_COST_TOTAL: Final = "total"
