"""``spanattrs.put`` leaves a span exactly as ``Span.set_attributes`` would, limits included."""

from __future__ import annotations

import enum
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from sessionlens.instrumentation.spanattrs import put


class Colour(enum.IntEnum):
    RED = 1


CASES: list[dict[str, Any]] = [
    {"s": "x", "i": 3, "f": 0.5, "b": True, "zero": 0, "empty": ""},
    {"list": ["a", "b"], "tuple": ("c",), "none-list": []},
    {"ints": [1, 2], "mixed": ["a", 1], "nested": [["a"]], "bytes": b"raw"},  # the SDK's path
    {"enum": Colour.RED, "obj": object(), "none": None, "": "no key", "dict": {"k": "v"}},
    {"long": "y" * 50, "s": "again"},
    {"s": "plain first", "ints": [1], "t": "then plain"},  # one value to clean: all go the SDK's way
]


def _pair(limits: SpanLimits | None = None, before: dict[str, Any] | None = None) -> tuple[Any, Any]:
    tracer = TracerProvider(span_limits=limits or SpanLimits()).get_tracer("t")
    return tracer.start_span("a", attributes=before), tracer.start_span("b", attributes=before)


def _same(reference: Any, ours: Any) -> None:
    assert list(ours.attributes.items()) == list(reference.attributes.items())
    assert ours.dropped_attributes == reference.dropped_attributes


@pytest.mark.parametrize("attributes", CASES)
@pytest.mark.parametrize(
    "limits",
    [None, SpanLimits(max_attribute_length=3), SpanLimits(max_span_attributes=4), SpanLimits(max_span_attributes=0)],
    ids=["no-limits", "value-length", "count", "none-allowed"],
)
def test_put_equals_set_attributes(attributes: dict[str, Any], limits: SpanLimits | None) -> None:
    reference, ours = _pair(limits, before={"s": "first", "kept": 1})
    reference.set_attributes(attributes)
    put(ours, attributes)
    _same(reference, ours)


def test_a_key_set_again_moves_to_the_end_as_in_the_sdk() -> None:
    reference, ours = _pair(before={"a": "1", "b": "2"})
    reference.set_attributes({"a": "3"})
    put(ours, {"a": "3"})
    _same(reference, ours)
    assert list(ours.attributes) == ["b", "a"]


def test_stored_sequences_are_tuples_a_later_change_cannot_reach() -> None:
    values = ["a"]
    span = TracerProvider().get_tracer("t").start_span("x")
    put(span, {"k": values})
    values.append("b")
    assert span.attributes["k"] == ("a",)


def test_an_ended_span_is_left_alone_with_the_sdks_warning(caplog: pytest.LogCaptureFixture) -> None:
    reference, ours = _pair()
    reference.end()
    ours.end()
    with caplog.at_level(logging.WARNING):
        put(ours, {"late": "x"})
    assert "late" not in ours.attributes and "ended span" in caplog.text
    _same(reference, ours)


def test_a_span_that_is_not_an_sdk_span_gets_set_attributes() -> None:
    class Recording:
        def __init__(self) -> None:
            self.got: dict[str, Any] = {}

        def set_attributes(self, attributes: dict[str, Any]) -> None:
            self.got.update(attributes)

    span = Recording()
    put(span, {"a": "1"})
    assert span.got == {"a": "1"}
