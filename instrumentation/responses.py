"""What an LLM response says: id, model, finish reasons, usage and (optionally) output text.

One ``ResponseReader`` per call takes either the whole JSON body or the JSON objects of a
stream's events one by one; the same fields appear in both, so one ``update`` serves both.
"""

from __future__ import annotations

import re
from typing import Any

from sessionlens import conventions as c
from sessionlens.instrumentation.providers import ANTHROPIC, GEMINI, Endpoint

# Stream events that carry what the span needs; the others (text deltas) are only parsed
# when content is captured. Matching bytes first keeps json.loads off the per-chunk path.
_INTERESTING = {
    "openai": re.compile(rb'"finish_reason":\s*"|"usage":\s*\{'),
    "responses": re.compile(rb'"type":\s*"(?:response\.(?:created|completed|incomplete|failed)|error)"'),
    ANTHROPIC: re.compile(rb'"type":\s*"(?:message_start|message_delta|error)"'),
    # Gemini repeats its (cumulative) usage in every chunk: the last event is enough.
    GEMINI: re.compile(rb"(?!)"),
}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ResponseReader:
    """Collects the response attributes of one call from its body or its stream events."""

    def __init__(self, endpoint: Endpoint, capture: bool) -> None:
        self._family = "responses" if endpoint.responses_api else endpoint.family
        self.interesting = _INTERESTING[self._family]
        self.capture = capture
        self.attributes: dict[str, Any] = {}
        self.finish_reasons: list[str] = []
        self._usage: dict[str, int] = {}
        self.text: list[str] = []
        self.output: list[Any] | None = None
        """Whole output messages (non-streaming bodies), when content is captured."""

    def update(self, obj: Any) -> None:
        """Merge what one JSON object (a body, a chunk or an event) says."""
        if isinstance(obj, list):  # Gemini's non-SSE stream: a JSON array of chunks
            for item in obj:
                self.update(item)
            return
        if not isinstance(obj, dict):
            return
        if self._family == "openai":
            self._openai(obj)
        elif self._family == "responses":
            self._responses(obj.get("response") if "response" in obj else obj)
        elif self._family == ANTHROPIC:
            self._anthropic(obj)
        else:
            self._gemini(obj)

    def result(self) -> dict[str, Any]:
        """The response attributes gathered so far."""
        attrs = dict(self.attributes)
        if self.finish_reasons:
            attrs[c.FINISH_REASONS] = self.finish_reasons
        usage = self._usage
        if self._family == ANTHROPIC and "input" in usage:
            # Anthropic's input_tokens excludes cache reads/writes; the conventions count them.
            attrs[c.INPUT_TOKENS] = usage["input"] + usage.get("cache_read", 0) + usage.get("cache_creation", 0)
        elif "input" in usage:
            attrs[c.INPUT_TOKENS] = usage["input"]
        for name, key in (
            ("output", c.OUTPUT_TOKENS),
            ("cache_read", c.CACHE_READ_INPUT_TOKENS),
            ("cache_creation", c.CACHE_CREATION_INPUT_TOKENS),
            ("reasoning", c.REASONING_OUTPUT_TOKENS),
        ):
            if name in usage:
                attrs[key] = usage[name]
        return attrs

    def _ids(self, obj: dict[str, Any], id_key: str = "id", model_key: str = "model") -> None:
        if isinstance(obj.get(id_key), str):
            self.attributes[c.RESPONSE_ID] = obj[id_key]
        if isinstance(obj.get(model_key), str):
            self.attributes[c.RESPONSE_MODEL] = obj[model_key]

    def _set_usage(self, **values: Any) -> None:
        for name, value in values.items():
            number = _int(value)
            if number is not None:
                self._usage[name] = number

    def _openai(self, obj: dict[str, Any]) -> None:
        self._ids(obj)
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reasons.append(choice["finish_reason"])
            if self.capture:
                self._openai_content(choice)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens_details") or {}
            completion = usage.get("completion_tokens_details") or {}
            self._set_usage(
                input=usage.get("prompt_tokens"),
                output=usage.get("completion_tokens"),
                cache_read=prompt.get("cached_tokens") if isinstance(prompt, dict) else None,
                reasoning=completion.get("reasoning_tokens") if isinstance(completion, dict) else None,
            )

    def _openai_content(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
        elif isinstance(choice.get("message"), dict):
            self.output = (self.output or []) + [choice["message"]]
        elif isinstance(choice.get("text"), str):
            self.text.append(choice["text"])

    def _responses(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        if obj.get("type") == "response.output_text.delta" and self.capture:
            if isinstance(obj.get("delta"), str):
                self.text.append(obj["delta"])
            return
        self._ids(obj)
        status = obj.get("status")
        incomplete = obj.get("incomplete_details")
        if isinstance(incomplete, dict) and isinstance(incomplete.get("reason"), str):
            self.finish_reasons = [incomplete["reason"]]
        elif status in ("completed", "failed", "cancelled"):
            self.finish_reasons = [status]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            inp = usage.get("input_tokens_details") or {}
            out = usage.get("output_tokens_details") or {}
            self._set_usage(
                input=usage.get("input_tokens"),
                output=usage.get("output_tokens"),
                cache_read=inp.get("cached_tokens") if isinstance(inp, dict) else None,
                reasoning=out.get("reasoning_tokens") if isinstance(out, dict) else None,
            )
        if self.capture and isinstance(obj.get("output"), list) and status is not None:
            self.output = obj["output"]

    def _anthropic(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if self.capture and isinstance(delta, dict) and isinstance(delta.get("text"), str):
                self.text.append(delta["text"])
            return
        message = obj.get("message") if kind == "message_start" else obj
        if not isinstance(message, dict):
            return
        self._ids(message)
        delta = obj.get("delta") if kind == "message_delta" else message
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self.finish_reasons = [delta["stop_reason"]]
        usage = message.get("usage") if kind != "message_delta" else obj.get("usage")
        if isinstance(usage, dict):
            self._set_usage(
                input=usage.get("input_tokens"),
                output=usage.get("output_tokens"),
                cache_read=usage.get("cache_read_input_tokens"),
                cache_creation=usage.get("cache_creation_input_tokens"),
            )
        if self.capture and kind == "message" and isinstance(message.get("content"), list):
            self.output = [{"role": message.get("role", "assistant"), "content": message["content"]}]

    def _gemini(self, obj: dict[str, Any]) -> None:
        self._ids(obj, "responseId", "modelVersion")
        reasons = []
        for candidate in obj.get("candidates") or ():
            if not isinstance(candidate, dict):
                continue
            if isinstance(candidate.get("finishReason"), str):
                reasons.append(candidate["finishReason"])
            if self.capture:
                content = candidate.get("content")
                parts = content.get("parts") if isinstance(content, dict) else None
                for part in parts or ():
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        self.text.append(part["text"])
        if reasons:
            self.finish_reasons = reasons
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            candidates = _int(usage.get("candidatesTokenCount")) or 0
            thoughts = _int(usage.get("thoughtsTokenCount"))
            self._set_usage(
                input=usage.get("promptTokenCount"),
                # Gemini counts thinking apart from the candidates; the conventions include it.
                output=candidates + (thoughts or 0) if "candidatesTokenCount" in usage else None,
                cache_read=usage.get("cachedContentTokenCount"),
                reasoning=thoughts,
            )
