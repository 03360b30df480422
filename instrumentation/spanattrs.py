"""Attributes onto an SDK span without cleaning again what is already clean.

``Span.set_attributes`` runs every value through the SDK's cleaning (a recursive Python
function with a chain of isinstance checks, then a locked insert per key): ~5,000
instructions per attribute, paid for each of the ~20 attributes of an LLM span and the
session attributes of every other span. The values the instrumentation sets are almost
always already in the SDK's stored form — ``str``, ``bool``, ``int``, ``float``, or a tuple
of ``str`` — and cleaning leaves such a value as it is whenever no string length limit is
configured. ``put`` stores those directly, with the SDK's own semantics (a key set again
moves to the end, the span lock is held). A mapping with any other value, and any span or
configuration that is not the plain case (a length limit, a count limit that would act, an
ended span, a span that is not an SDK one), goes through ``set_attributes`` as it is.
It reads the SDK span's private fields; when they are not what it expects, it falls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes

_PLAIN = frozenset({str, bool, int, float})


def put(span: Any, attributes: Mapping[str, Any]) -> None:
    """``span.set_attributes(attributes)``, storing plain values without cleaning them again."""
    if not attributes:
        return
    try:
        bounded = span._attributes
        stored = bounded._dict
        lock = span._lock
        plain_case = (
            type(bounded) is BoundedAttributes
            and type(stored) is dict
            and bounded.max_value_len is None  # else strings may need cutting: the SDK does it
            and not bounded._immutable
            and span._end_time is None  # an ended span: let the SDK warn
            and (bounded.maxlen is None or len(stored) + len(attributes) <= bounded.maxlen)
        )
    except AttributeError:  # not an SDK span, or one whose fields are not what they were
        plain_case = False
    if plain_case:
        plain = _plain(attributes)
        if plain is not None:
            with lock:
                if span._end_time is None:
                    for key, value in plain.items():
                        if key in stored:
                            del stored[key]  # as the SDK does: a key set again moves to the end
                        stored[key] = value
                    return
    # A value the SDK must clean, a limit, or the span ended meanwhile: its path, for all.
    span.set_attributes(attributes)


def _plain(attributes: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``attributes`` as the SDK would store them, or None when one needs the SDK's cleaning.

    Sequences of ``str`` are stored as tuples, as the SDK stores them; a mapping without
    one is returned as it is (no copy).
    """
    plain = attributes
    for key, value in attributes.items():
        if type(key) is not str or not key:
            return None
        kind = type(value)
        if kind in _PLAIN:
            continue
        if (kind is tuple or kind is list) and all(type(v) is str for v in value):
            if plain is attributes:
                plain = dict(attributes)
            plain[key] = tuple(value)  # type: ignore[index]
        else:
            return None
    return plain
