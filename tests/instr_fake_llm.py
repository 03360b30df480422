"""A fake LLM server on 127.0.0.1 speaking enough OpenAI, Anthropic and Gemini for the SDKs.

Real HTTP (threaded stdlib server, keep-alive, chunked SSE). The requested model picks
the behaviour: ``fail-429`` / ``fail-500`` answer with that status, ``flaky-<model>`` answers
429 to a first attempt and as ``<model>`` to the SDK's retry, ``stall`` waits before
answering (client timeouts), ``stall-stream`` sends one event and then stalls, ``gzip`` streams
gzip-compressed; any other
model gets a normal answer with fixed usage (see the ``USAGE_*`` constants).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STALL_SECONDS = 1.0
RESPONSE_MODEL_SUFFIX = "-2024-08-06"
"""OpenAI-style answers name the dated model snapshot, as the real API does."""
REPLY = ["Hel", "lo", " there"]
USAGE_OPENAI = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
USAGE_ANTHROPIC = {
    "input_tokens": 10,
    "output_tokens": 6,
    "cache_read_input_tokens": 4,
    "cache_creation_input_tokens": 2,
}
USAGE_RESPONSES = {
    "input_tokens": 9,
    "output_tokens": 5,
    "total_tokens": 14,
    "input_tokens_details": {"cached_tokens": 1},
    "output_tokens_details": {"reasoning_tokens": 1},
}
USAGE_GEMINI = {"promptTokenCount": 8, "candidatesTokenCount": 4, "thoughtsTokenCount": 3, "totalTokenCount": 15}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeLLMServer

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must not wait for delayed ACKs (Nagle): TTFT would read ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        path = self.path.split("?", 1)[0]
        model = body.get("model") or path.rsplit("/", 1)[-1].split(":", 1)[0]
        if model.startswith("fail-"):
            status = int(model[5:])
            return self._json({"error": {"type": "fail", "message": f"fake {status}"}}, status)
        if model.startswith("flaky-"):  # 429 on the first attempt, then the model's answer
            if self.headers.get("x-stainless-retry-count", "0") == "0":
                return self._json({"error": {"type": "rate_limit", "message": "fake 429"}}, 429)
            model = body["model"] = model.removeprefix("flaky-")
        if model == "stall":
            time.sleep(STALL_SECONDS)
        stream = body.get("stream") is True or path.endswith(":streamGenerateContent")
        if path.endswith("/chat/completions"):
            return self._chat(model, body, stream)
        if path.endswith("/completions"):
            return self._json(_completion(model))
        if path.endswith("/embeddings"):
            usage = {"prompt_tokens": 5, "total_tokens": 5}
            return self._json({"object": "list", "data": [{"embedding": [0.1, 0.2]}], "model": model, "usage": usage})
        if path.endswith("/responses"):
            return self._responses(model, stream)
        if path.endswith("/v1/messages"):
            return self._messages(model, stream)
        if ":generateContent" in path or ":streamGenerateContent" in path:
            return self._gemini(model, stream)
        return self._json({"error": "not found"}, 404)

    # --- transport ----------------------------------------------------------------------

    def _json(self, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if status == 429:
            self.send_header("retry-after-ms", "1")
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]], model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        if model == "gzip":
            self.send_header("content-encoding", "gzip")
        self.end_headers()
        texts = []
        for name, data in events:
            payload = data if isinstance(data, str) else json.dumps(data)
            texts.append(((f"event: {name}\n" if name else "") + f"data: {payload}\n\n").encode())
        if model == "gzip":
            texts = [gzip.compress(b"".join(texts))]
        for i, text in enumerate(texts):
            self._chunk(text)
            if model == "stall-stream" and i == 0:
                time.sleep(STALL_SECONDS)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- APIs ---------------------------------------------------------------------------

    def _chat(self, model: str, body: dict[str, Any], stream: bool) -> None:
        base = {"id": "chatcmpl-1", "created": 1, "model": model + RESPONSE_MODEL_SUFFIX}
        if not stream:
            message = {"role": "assistant", "content": "".join(REPLY)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return self._json({**base, "object": "chat.completion", "choices": [choice], "usage": USAGE_OPENAI})
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        ]
        for text in REPLY:
            events.append((None, {**chunk, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}))
        events.append((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, {**chunk, "choices": [], "usage": USAGE_OPENAI}))
        events.append((None, "[DONE]"))
        self._sse(events, model)

    def _responses(self, model: str, stream: bool) -> None:
        output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "".join(REPLY)}]}]
        done = {"id": "resp_1", "object": "response", "model": model, "status": "completed", "output": output}
        done["usage"] = USAGE_RESPONSES
        if not stream:
            return self._json(done)
        created = {**done, "status": "in_progress", "output": [], "usage": None}
        events: list[tuple[str | None, Any]] = [("response.created", {"type": "response.created", "response": created})]
        for text in REPLY:
            events.append(("response.output_text.delta", {"type": "response.output_text.delta", "delta": text}))
        events.append(("response.completed", {"type": "response.completed", "response": done}))
        self._sse(events, model)

    def _messages(self, model: str, stream: bool) -> None:
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "stop_sequence": None}
        if not stream:
            content = [{"type": "text", "text": "".join(REPLY)}]
            return self._json({**message, "content": content, "stop_reason": "end_turn", "usage": USAGE_ANTHROPIC})
        start_usage = {**USAGE_ANTHROPIC, "output_tokens": 1}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
        for text in REPLY:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
            events.append(("content_block_delta", delta))
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 6}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events, model)

    def _gemini(self, model: str, stream: bool) -> None:
        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            return {"candidates": [candidate], "usageMetadata": USAGE_GEMINI, "modelVersion": model + "-001", "responseId": "g-1"}

        if not stream:
            return self._json(chunk("".join(REPLY), "STOP"))
        events = [(None, chunk(text, "STOP" if i == len(REPLY) - 1 else None)) for i, text in enumerate(REPLY)]
        self._sse(events, model)  # type: ignore[arg-type]


def _completion(model: str) -> dict[str, Any]:
    choice = {"index": 0, "text": "".join(REPLY), "finish_reason": "length", "logprobs": None}
    return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model, "choices": [choice], "usage": USAGE_OPENAI}


class FakeLLMServer(ThreadingHTTPServer):
    """The fake server; ``url`` is its base URL, ``requests`` what it received (path, lower-cased headers, body)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping keep-alive connections (or abandoning streams) is normal here.
        pass

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
