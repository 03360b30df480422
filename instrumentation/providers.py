"""Which HTTP requests are LLM calls, and what their request bodies say.

An LLM API is recognised by its request path (and the host, for the provider name):
OpenAI-compatible ``/chat/completions``, ``/completions``, ``/embeddings``, ``/responses``;
Anthropic ``/v1/messages``; Gemini ``…:generateContent`` / ``…:streamGenerateContent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sessionlens import conventions as c

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"

# Host suffix -> gen_ai.provider.name for OpenAI-compatible APIs (semantic-convention values).
_OPENAI_COMPATIBLE_HOSTS = (
    ("openai.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.inference"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("openrouter.ai", "openrouter"),
    ("api.perplexity.ai", "perplexity"),
    ("api.together.xyz", "together_ai"),
    ("api.fireworks.ai", "fireworks_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
)

# Path suffix -> (API family, gen_ai.operation.name), most specific first.
_OPENAI_PATHS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "chat"),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An LLM API call recognised from the request URL."""

    family: str
    """Which request/response format: ``openai`` (and its Responses API), ``anthropic``, ``gemini``."""
    provider: str
    operation: str
    responses_api: bool = False
    path_model: str | None = None
    """The model named in the path (Gemini), which its body does not repeat."""


def recognise(host: str, path: str) -> Endpoint | None:
    """The LLM endpoint a request to ``host``/``path`` calls, or None for other traffic."""
    if path.endswith("/messages") and (path.endswith("/v1/messages") or "anthropic" in host):
        return Endpoint(ANTHROPIC, ANTHROPIC, "chat")
    if path.endswith(":generateContent") or path.endswith(":streamGenerateContent"):
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        provider = "gcp.vertex_ai" if "aiplatform" in host else "gcp.gemini"
        return Endpoint(GEMINI, provider, "generate_content", path_model=model or None)
    for suffix, operation in _OPENAI_PATHS:
        if path.endswith(suffix):
            return Endpoint(OPENAI, _openai_provider(host), operation, responses_api=suffix == "/responses")
    return None


def _openai_provider(host: str) -> str:
    for suffix, provider in _OPENAI_COMPATIBLE_HOSTS:
        if host.endswith(suffix):
            return provider
    # Self-hosted OpenAI-compatible servers (vLLM, Ollama, LiteLLM…) speak OpenAI's API.
    return OPENAI


# Request body field -> attribute, per family; each value is kept when its type fits.
_PARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    OPENAI: (
        ("max_tokens", c.REQUEST_MAX_TOKENS),
        ("max_completion_tokens", c.REQUEST_MAX_TOKENS),
        ("max_output_tokens", c.REQUEST_MAX_TOKENS),
        ("temperature", c.REQUEST_TEMPERATURE),
        ("top_p", c.REQUEST_TOP_P),
        ("frequency_penalty", c.REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", c.REQUEST_PRESENCE_PENALTY),
        ("seed", c.REQUEST_SEED),
        ("n", c.REQUEST_CHOICE_COUNT),
        ("stop", c.REQUEST_STOP_SEQUENCES),
        ("encoding_format", c.REQUEST_ENCODING_FORMATS),
    ),
    ANTHROPIC: (
        ("max_tokens", c.REQUEST_MAX_TOKENS),
        ("temperature", c.REQUEST_TEMPERATURE),
        ("top_p", c.REQUEST_TOP_P),
        ("top_k", c.REQUEST_TOP_K),
        ("stop_sequences", c.REQUEST_STOP_SEQUENCES),
    ),
    GEMINI: (
        ("maxOutputTokens", c.REQUEST_MAX_TOKENS),
        ("temperature", c.REQUEST_TEMPERATURE),
        ("topP", c.REQUEST_TOP_P),
        ("topK", c.REQUEST_TOP_K),
        ("seed", c.REQUEST_SEED),
        ("candidateCount", c.REQUEST_CHOICE_COUNT),
        ("stopSequences", c.REQUEST_STOP_SEQUENCES),
    ),
}
_PARAMETER_ORDER = {family: {field: i for i, (field, _) in enumerate(fields)} for family, fields in _PARAMETERS.items()}
_PARAMETER_KEYS = {(field, family): key for family, fields in _PARAMETERS.items() for field, key in fields}
_LIST_ATTRIBUTES = frozenset({c.REQUEST_STOP_SEQUENCES, c.REQUEST_ENCODING_FORMATS})


def request_attributes(endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    """The GenAI request attributes (model and parameters) of a request body."""
    attrs: dict[str, Any] = {}
    model = endpoint.path_model or body.get("model")
    if isinstance(model, str):
        attrs[c.REQUEST_MODEL] = model
    source = body.get("generationConfig") if endpoint.family == GEMINI else body
    if isinstance(source, dict):
        order = _PARAMETER_ORDER[endpoint.family]
        # Only the fields the body has (a set operation in C), in the table's order.
        for field in sorted(source.keys() & order.keys(), key=order.__getitem__):
            key = _PARAMETER_KEYS[field, endpoint.family]
            value = source[field]
            if value is None or key in attrs:
                continue
            if key in _LIST_ATTRIBUTES:
                value = [value] if isinstance(value, str) else value
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    attrs[key] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[key] = value
    return attrs


def body_user(body: dict[str, Any]) -> str | None:
    """The end user a request body names (OpenAI ``user``/``safety_identifier``, Anthropic ``metadata.user_id``)."""
    for value in (body.get("safety_identifier"), body.get("user")):
        if isinstance(value, str) and value:
            return value
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get("user_id")
        if isinstance(value, str) and value:
            return value
    return None
