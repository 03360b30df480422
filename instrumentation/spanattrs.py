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
    bounded = getattr(span, "_attributes", None)
    lock = getattr(span, "_lock", None)
    stored = getattr(bounded, "_dict", None)
    if (
        type(bounded) is not BoundedAttributes
        or lock is None
        or not isinstance(stored, dict)
        or getattr(bounded, "max_value_len", 0) is not None  # strings may need cutting: the SDK does it
        or getattr(bounded, "_immutable", True)
        or getattr(span, "_end_time", 0) is not None  # ended (or unknown): let the SDK warn
        or (bounded.maxlen is not None and len(stored) + len(attributes) > bounded.maxlen)
    ):
        span.set_attributes(attributes)
        return
    plain: dict[str, Any] = {}
    for key, value in attributes.items():
        kind = type(value)
        if type(key) is not str or not key:
            break
        if kind in _PLAIN:
            plain[key] = value
        elif (kind is tuple or kind is list) and all(type(v) is str for v in value):
            plain[key] = tuple(value)
        else:
            break
    else:
        with lock:
            if span._end_time is None:
                for key, value in plain.items():
                    if key in stored:
                        del stored[key]  # as the SDK does: a key set again moves to the end
                    stored[key] = value
                return
    # A value the SDK must clean, or the span ended meanwhile: its path, for all of them.
    span.set_attributes(attributes)
