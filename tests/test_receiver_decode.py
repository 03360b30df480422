"""OTLP decoding: attribute rendering as the clickhouseexporter does it, validation, leniency."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sessionlens.collector import otlp


def _value(**kwargs) -> AnyValue:
    return AnyValue(**kwargs)


def _array(*values: AnyValue) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(values)
    return value


def _kvlist(**values: AnyValue) -> AnyValue:
    value = AnyValue()
    value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in values.items())
    return value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (_value(string_value="héllo"), "héllo"),
        (_value(string_value=""), ""),
        (AnyValue(), ""),
        (_value(int_value=-42), "-42"),
        (_value(int_value=2**63 - 1), "9223372036854775807"),
        (_value(double_value=0.25), "0.25"),
        (_value(double_value=3.0), "3"),
        (_value(double_value=1e21), "1000000000000000000000"),
        (_value(double_value=1.5e-7), "0.00000015"),
        (_value(double_value=float("inf")), "+Inf"),
        (_value(double_value=float("nan")), "NaN"),
        (_value(bool_value=True), "true"),
        (_value(bool_value=False), "false"),
        (_value(bytes_value=b"\x00\xff"), "AP8="),
        (_array(_value(string_value="stop"), _value(int_value=1), _value(bool_value=True)),
         '["stop",1,true]'),
        (_kvlist(a=_value(string_value="x"), b=_array(_value(double_value=0.5))),
         '{"a":"x","b":[0.5]}'),
        (_array(), "[]"),
        (_array(_value(string_value='q"é')), '["q\\"é"]'),
    ],
)
def test_render(value, text):
    assert otlp.render(value) == text
    assert otlp.render(value) == text  # a cached composite renders the same


def test_attributes_render_every_kind_including_defaults():
    values = {"s": _value(string_value="x"), "e": _value(string_value=""), "i": _value(int_value=7),
              "zero": _value(int_value=0), "no": _value(bool_value=False), "d": _value(double_value=0.0),
              "a": _array(_value(string_value="stop")), "unset": AnyValue()}
    kvs = [KeyValue(key=k, value=v) for k, v in values.items()]
    assert otlp.attributes(kvs) == {"s": "x", "e": "", "i": "7", "zero": "0", "no": "false",
                                    "d": "0", "a": '["stop"]', "unset": ""}


def test_attributes_later_duplicate_wins():
    kvs = [KeyValue(key="k", value=_value(string_value="first")),
           KeyValue(key="k", value=_value(int_value=2))]
    assert otlp.attributes(kvs) == {"k": "2"}


def _one_span_request(**span_fields) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "op"
    for key, value in span_fields.items():
        setattr(span, key, value)
    return request


def test_events_and_links_are_decoded():
    request = _one_span_request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(time_unix_nano=5, name="gen_ai.choice")
    event.attributes.add(key="index", value=_value(int_value=0))
    link = span.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, trace_state="k=v")
    link.attributes.add(key="why", value=_value(string_value="retry"))
    (decoded,) = otlp.decode(request).spans
    assert (decoded.events[0].name, decoded.events[0].attributes) == ("gen_ai.choice", {"index": "0"})
    assert decoded.links[0].trace_id == b"\x03" * 16
    assert decoded.links[0].attributes == {"why": "retry"}


def test_resource_overrides_replace_client_values_and_resource_is_shared():
    request = _one_span_request()
    request.resource_spans[0].resource.attributes.add(key="sessionlens.project", value=_value(string_value="evil"))
    request.resource_spans[0].scope_spans[0].spans.add().CopyFrom(
        request.resource_spans[0].scope_spans[0].spans[0]
    )
    first, second = otlp.decode(request, {"sessionlens.project": "team"}).spans
    assert first.resource == {"sessionlens.project": "team"}
    assert first.resource is second.resource


def test_invalid_utf8_in_keys_and_nested_values_is_replaced():
    request = _one_span_request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="kAAA", value=_array(_value(string_value="vBBB")))
    body = request.SerializeToString().replace(b"AAA", b"\xc3\x28!").replace(b"BBB", b"\xe2\x82!")
    (decoded,) = otlp.decode(otlp.parse_protobuf(body)).spans
    assert decoded.attributes == {"k\ufffd(!": '["v\ufffd!"]'}


def test_truncated_body_is_malformed():
    body = _one_span_request().SerializeToString()
    with pytest.raises(otlp.MalformedRequest):
        otlp.parse_protobuf(body[:-3])


def test_json_accepts_snake_case_and_rejects_non_objects():
    request = otlp.parse_json(
        b'{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10",'
        b'"span_id":"0102030405060708","name":"x","kind":"SPAN_KIND_SERVER"}]}]}]}'
    )
    (span,) = otlp.decode(request).spans
    assert span.trace_id.hex() == "0102030405060708090a0b0c0d0e0f10" and span.kind == 2
    for body in (b"[1, 2]", b'{"resourceSpans": 5}', b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}'):
        with pytest.raises(otlp.MalformedRequest):
            otlp.parse_json(body)


@given(raw=st.binary(min_size=1, max_size=64), in_name=st.booleans())
@settings(max_examples=200, deadline=None)
def test_any_bytes_in_a_string_field_become_replacement_decoded_text(raw, in_name):
    """Whatever bytes a client puts in a string, the span is kept and the text is what
    Python's ``decode('utf-8', 'replace')`` makes of them."""
    marker = "Q" * len(raw)
    request = _one_span_request()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    if in_name:
        span.name = marker
    else:
        span.attributes.add(key="k", value=_value(string_value=marker))
    body = request.SerializeToString()
    at = body.rindex(marker.encode())
    body = body[:at] + raw + body[at + len(raw):]
    (decoded,) = otlp.decode(otlp.parse_protobuf(body)).spans
    expected = raw.decode("utf-8", "replace")
    assert (decoded.name if in_name else decoded.attributes["k"]) == expected


def test_the_composite_value_cache_is_bounded_in_bytes():
    otlp._composite_cache.clear()
    repeated = _array(_value(string_value="stop"))
    for i in range(400):  # distinct ~0.8 MiB arrays, as a hostile client sends them
        big = _array(*[_value(string_value=f"{i}-{j}-" + "x" * 800) for j in range(1000)])
        assert otlp.render(big).startswith(f'["{i}-0-')
        otlp.render(repeated)
    held = sum(len(k) + len(v) for k, v in otlp._composite_cache.items())
    assert held < 16 << 20
    assert repeated.SerializeToString() in otlp._composite_cache  # small values are still cached


def test_protobuf_nested_10000_deep_is_malformed_not_a_crash():
    value = _value(string_value="leaf")
    raw = value.SerializeToString()
    for _ in range(10_000):  # AnyValue{array_value: ArrayValue{values: [raw]}}, by hand: no recursion here
        array = b"\x0a" + _varint(len(raw)) + raw
        raw = b"\x2a" + _varint(len(array)) + array
    kv = b"\x0a\x01k" + b"\x12" + _varint(len(raw)) + raw
    span = b"\x0a\x10" + b"\x01" * 16 + b"\x12\x08" + b"\x02" * 8 + b"\x4a" + _varint(len(kv)) + kv
    scope_spans = b"\x12" + _varint(len(span)) + span
    resource_spans = b"\x12" + _varint(len(scope_spans)) + scope_spans
    body = b"\x0a" + _varint(len(resource_spans)) + resource_spans
    with pytest.raises(otlp.MalformedRequest):
        otlp.parse_protobuf(body)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_json_nested_too_deep_is_malformed():
    deep = '{"resourceSpans": [' * 5000 + "]}" * 5000
    with pytest.raises(otlp.MalformedRequest, match="nested too deep"):
        otlp.parse_json(deep.encode())
