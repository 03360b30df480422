"""The engine path's spool records (``schema/otlp_ingest.proto``'s ``Record``), by hand.

A record is the request's bytes as received, its project and one decision per span,
nested as the request nests its spans. Encoding is a few byte concatenations per span
(no message objects on the hot path); decoding, for the rare readers (the spool scan at
start, a fallback to the span path), goes through the Python decoder of ``otlp``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sessionlens import conventions as c
from sessionlens.collector import otlp
from sessionlens.collector.pdata import Span

# field tags (field number << 3 | wire type 2, length-delimited; 0 varint)
_REQUEST, _PROJECT, _DECISIONS = b"\x0a", b"\x12", b"\x1a"
_NESTED = b"\x0a"  # ResourceDecisions.scope_spans and ScopeDecisions.spans: field 1
_SESSION_ID, _SESSION_SOURCE, _COST, _DROP = b"\x0a", b"\x12", b"\x1a", b"\x20\x01"

NO_DECISION = _NESTED + b"\x00"
"""A span's decision message that decides nothing, framed as an element of ``spans``."""


def varint(n: int) -> bytes:
    """``n`` as a protobuf varint."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def decision(session_id: str = "", session_source: str = "", cost: str = "", drop: bool = False) -> bytes:
    """One span's decision, framed as an element of ``ScopeDecisions.spans``: the
    attributes to set (empty: leave) and whether the span is dropped."""
    message = b""
    if session_id:
        message = _field(_SESSION_ID, session_id.encode())
    if session_source:
        message += _field(_SESSION_SOURCE, session_source.encode())
    if cost:
        message += _field(_COST, cost.encode())
    if drop:
        message += _DROP
    return _field(_NESTED, message) if message else NO_DECISION


def record(body: bytes, project: str | None, decisions: Sequence[Sequence[Sequence[bytes]]] = ()) -> bytes:
    """A length-delimited record: ``decisions[resource][scope]`` lists each span's framed
    ``decision``; empty: none (the extract reads no decisions)."""
    message = _field(_REQUEST, body)
    if project:
        message += _field(_PROJECT, project.encode())
    for scopes in decisions:
        message += _field(_DECISIONS, b"".join(_field(_NESTED, b"".join(spans)) for spans in scopes))
    return varint(len(message)) + message


# --- reading records back ----------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of a message: bytes for length-delimited fields, else ints."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _read_varint(data, pos)
            yield number, data[pos : pos + size]
            pos += size
        elif wire == 0:
            value, pos = _read_varint(data, pos)
            yield number, value
        else:
            raise ValueError(f"unexpected wire type {wire} in a spool record")


def split(stream: bytes) -> Iterator[bytes]:
    """The records (without their length prefix) of a stream of length-delimited ones."""
    pos, end = 0, len(stream)
    while pos < end:
        size, pos = _read_varint(stream, pos)
        yield stream[pos : pos + size]
        pos += size


def spans(message: bytes) -> list[Span]:
    """A record's stored spans as the span path would have them (decisions applied)."""
    body, project, resources = b"", "", []
    for number, value in _fields(message):
        if number == 1:
            body = value
        elif number == 2:
            project = value.decode()
        elif number == 3:
            resources.append(value)
    decoded = otlp.decode(otlp.parse_protobuf(body), {c.PROJECT: project} if project else None)
    flat = [
        span_decision
        for resource in resources
        for _, scope in _fields(resource)
        for _, span_decision in _fields(scope)
    ]
    kept = []
    for span, raw in zip(decoded.spans, flat or [b""] * len(decoded.spans)):
        fields = dict(_fields(raw))
        if fields.get(4):
            continue
        a = span.attributes
        if 1 in fields:
            a[c.SESSION_ID] = fields[1].decode()
        if 2 in fields:
            a[c.SESSION_SOURCE] = fields[2].decode()
        if 3 in fields:
            a[c.COST] = fields[3].decode()
        kept.append(span)
    return kept
