"""Opt-in capture of prompts and completions (``gen_ai.input.messages`` and friends).

Off by default; ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` switches it on.
Each captured value is JSON, cut to ``SESSIONLENS_CAPTURE_MAX_BYTES`` (default 64 KiB).
"""

from __future__ import annotations

import json
import os
from typing import Any

from sessionlens import conventions as c
from sessionlens.instrumentation.providers import ANTHROPIC, GEMINI, Endpoint

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_BYTES_ENV = "SESSIONLENS_CAPTURE_MAX_BYTES"
DEFAULT_MAX_BYTES = 64 * 1024
TRUNCATION_MARK = "…[truncated]"


def capture_enabled() -> bool:
    """Whether the environment switches content capture on."""
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_bytes() -> int:
    """The size cap of one captured value, from the environment (invalid values give the default)."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_BYTES


def _capped(value: Any, limit: int) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    # The cut value is no longer JSON; the mark says so to whoever reads it.
    return encoded[: max(limit - len(TRUNCATION_MARK.encode()), 0)].decode(errors="ignore") + TRUNCATION_MARK


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for item in content if isinstance(content, list) else ():
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append({"type": "text", "content": item["text"]})
        elif isinstance(item, dict):
            parts.append({"type": str(item.get("type", "unknown"))})
    return parts


def _messages(items: Any, role_key: str = "role", content_key: str = "content") -> list[dict[str, Any]]:
    messages = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            messages.append({"role": item.get(role_key, "user"), "parts": _parts(item.get(content_key))})
    return messages


def input_attributes(endpoint: Endpoint, body: dict[str, Any], limit: int) -> dict[str, str]:
    """``gen_ai.input.messages`` and ``gen_ai.system_instructions`` of a request body."""
    attrs: dict[str, str] = {}
    system: Any = None
    if endpoint.family == GEMINI:
        messages = _messages(body.get("contents"), content_key="parts")
        instruction = body.get("systemInstruction")
        system = _parts(instruction.get("parts")) if isinstance(instruction, dict) else None
    elif endpoint.family == ANTHROPIC:
        messages = _messages(body.get("messages"))
        system = _parts(body.get("system")) if body.get("system") is not None else None
    elif endpoint.responses_api:
        raw = body.get("input")
        messages = [{"role": "user", "parts": _parts(raw)}] if isinstance(raw, str) else _messages(raw)
        system = _parts(body.get("instructions")) if body.get("instructions") is not None else None
    elif "messages" in body:
        messages = _messages(body.get("messages"))
    else:  # text completions and embeddings
        raw = body.get("prompt", body.get("input"))
        texts = raw if isinstance(raw, list) else [raw]
        messages = [{"role": "user", "parts": _parts(t)} for t in texts if isinstance(t, str)]
    if messages:
        attrs[c.INPUT_MESSAGES] = _capped(messages, limit)
    if system:
        attrs[c.SYSTEM_INSTRUCTIONS] = _capped(system, limit)
    return attrs


def output_attributes(text: list[str], output: list[Any] | None, finish: list[str], limit: int) -> dict[str, str]:
    """``gen_ai.output.messages`` from streamed text deltas or whole output messages."""
    if output is not None:
        messages = _messages(output)
    elif text:
        messages = [{"role": "assistant", "parts": _parts("".join(text))}]
    else:
        return {}
    for message, reason in zip(messages, finish):
        message["finish_reason"] = reason
    return {c.OUTPUT_MESSAGES: _capped(messages, limit)}
