"""Incremental server-sent-events splitting: bytes in, the ``data`` of each complete event out."""

from __future__ import annotations


class EventSplitter:
    """Splits a byte stream into SSE events as chunks arrive, in any chunking."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The ``data`` payloads (multi-line data joined by newlines) of the events ``chunk`` completes."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                # A trailing CR may be the first half of a CRLF: wait for the next chunk.
                self._buffer = buffer
                return []
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 2 :]
        payloads = []
        for block in buffer[:end].split(b"\n\n"):
            data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
            if data:
                payloads.append(b"\n".join(data))
        return payloads
