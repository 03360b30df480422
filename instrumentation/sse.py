"""Server-sent events: the ``data`` payloads of a complete event-stream body."""

from __future__ import annotations

import re

_TEXT = re.compile(rb"[^\n]")
_NEWLINE = ord("\n")


def _lf(body: bytes) -> bytes:
    if b"\r" in body:
        return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return body


def _payload(block: bytes) -> bytes | None:
    data = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(data) if data else None


def event_payloads(body: bytes) -> list[bytes]:
    """The ``data`` of each event in ``body`` (multi-line data joined by newlines), in order.

    A last event without its closing blank line (a stream cut short) still counts.
    """
    payloads = []
    for block in _lf(body).split(b"\n\n"):
        payload = _payload(block)
        if payload is not None:
            payloads.append(payload)
    return payloads


def _event_at(body: bytes, at: int) -> tuple[int, int]:
    """Where the event that has the (non-newline) byte ``at`` in its text starts and ends."""
    separator = body.rfind(b"\n\n", 0, at)
    end = body.find(b"\n\n", at)
    return (0 if separator < 0 else separator + 2), (len(body) if end < 0 else end)


_ACROSS_LINES: dict[re.Pattern[bytes], re.Pattern[bytes]] = {}


def _across_lines(wanted: re.Pattern[bytes]) -> re.Pattern[bytes]:
    """``wanted`` for the raw body: whitespace it allows may also be a break between the data
    lines of one event (joined by a newline in its payload)."""
    found = _ACROSS_LINES.get(wanted)
    if found is None:
        found = _ACROSS_LINES[wanted] = re.compile(wanted.pattern.replace(rb"\s*", rb"(?:\s|\ndata:)*"), wanted.flags)
    return found


def selected_payloads(body: bytes, wanted: re.Pattern[bytes]) -> list[bytes]:
    """Of the events of ``body`` but ``[DONE]``: the data of the first, of the last and of those
    whose data ``wanted`` matches, in order, each once — what ``event_payloads`` and a filter
    would give, found without splitting every event.

    A stream has an event per token, and only a few say what a span needs (ids, finish
    reason, usage): ``wanted`` and ``find`` scan the body in C, and Python touches only the
    events they point at; an event's data is checked against ``wanted`` once joined.
    """
    body = _lf(body)
    # An event is keyed by where it ends, the same from any byte of its text.
    chosen: dict[int, bytes] = {}
    position = 0
    while True:  # the first event with data
        text = _TEXT.search(body, position)
        if text is None:
            return []
        start, end = _event_at(body, text.start())
        payload = _payload(body[start:end])
        if payload is not None and payload != b"[DONE]":
            chosen[end] = payload
            first = end
            break
        position = end
    position = len(body)
    while True:  # the last event with data: at the latest the first one, so position stays > 0
        while body[position - 1] == _NEWLINE:
            position -= 1
        start, end = _event_at(body, position - 1)
        payload = _payload(body[start:end])
        if payload is not None and payload != b"[DONE]":
            chosen[end] = payload
            last = end
            break
        position = start
    pattern, position = _across_lines(wanted), first
    while (match := pattern.search(body, position, last)) is not None:
        position = match.end()
        if b"\n\n" in match.group():  # across two events: none of their data matches here
            position = match.start() + 1  # but a match may start inside it
            continue
        start, end = _event_at(body, match.start())
        if first < end < last and end not in chosen:
            payload = _payload(body[start:end])
            if payload is not None and payload != b"[DONE]" and wanted.search(payload):
                chosen[end] = payload
    return [chosen[end] for end in sorted(chosen)]
