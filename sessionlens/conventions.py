"""The attribute names sessionlens reads and writes: the one place that owns them.

Canonical keys follow the OpenTelemetry semantic conventions where one exists and
use the ``sessionlens.*`` namespace otherwise (SPEC §2). Every component — the
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
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- values -----------------------------------------------------------------------------

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
