"""Server-sent events: the ``data`` payloads of a complete event-stream body."""

from __future__ import annotations


def event_payloads(body: bytes) -> list[bytes]:
    """The ``data`` of each event in ``body`` (multi-line data joined by newlines), in order.

    A last event without its closing blank line (a stream cut short) still counts.
    """
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    payloads = []
    for block in body.split(b"\n\n"):
        data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            payloads.append(b"\n".join(data))
    return payloads
