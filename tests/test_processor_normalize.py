"""The normalize processor: aliases → canonical keys, value renames, limits, valid text."""

from __future__ import annotations

import pytest

from sessionlens import conventions as c
from sessionlens.collector.pdata import Event, Span
from sessionlens.processors import normalize
from span_factory import make_span


def run(spans: list[Span], **config) -> list[Span]:
    return normalize.NormalizeProcessor(normalize.Config(**config)).process(spans)


def test_spec_aliases_become_canonical_and_the_alias_is_kept():
    span = make_span(
        {
            "langfuse.session.id": "s-1",
            "enduser.id": "u-1",
            "gen_ai.usage.prompt_tokens": "12",
            "gen_ai.usage.completion_tokens": "5",
            "llm.cost.total": "0.25",
        }
    )
    (out,) = run([span])
    a = out.attributes
    assert a[c.SESSION_ID] == "s-1"
    assert a[c.USER_ID] == "u-1"
    assert a[c.INPUT_TOKENS] == "12"
    assert a[c.OUTPUT_TOKENS] == "5"
    assert a[c.COST] == "0.25"
    assert a["langfuse.session.id"] == "s-1"  # lossless
    assert a["gen_ai.usage.prompt_tokens"] == "12"


def test_canonical_key_wins_over_aliases_and_first_alias_wins_among_them():
    span = make_span(
        {
            c.SESSION_ID: "canonical",
            "gen_ai.conversation.id": "conv",
            "traceloop.association.properties.user_id": "later-alias",
            "enduser.id": "first-alias",
        }
    )
    (out,) = run([span])
    assert out.attributes[c.SESSION_ID] == "canonical"
    assert out.attributes[c.USER_ID] == "first-alias"


@pytest.mark.parametrize(
    ("alias", "value", "canonical", "expected"),
    [
        ("gen_ai.system", "az.ai.openai", c.PROVIDER, "azure.ai.openai"),
        ("gen_ai.system", "vertex_ai", c.PROVIDER, "gcp.vertex_ai"),
        ("gen_ai.system", "Anthropic", c.PROVIDER, "anthropic"),  # OpenLLMetry's spelling
        ("gen_ai.system", "some-new-vendor", c.PROVIDER, "some-new-vendor"),
        ("ai.model.provider", "openai.chat", c.PROVIDER, "openai"),  # Vercel AI
        ("llm.provider", "mistralai", c.PROVIDER, "mistral_ai"),  # OpenInference
        ("llm.request.type", "completion", c.OPERATION, "text_completion"),  # OpenLLMetry
        ("openinference.span.kind", "LLM", c.OPERATION, "chat"),
        ("langfuse.observation.type", "generation", c.OPERATION, "chat"),
        ("llm.model_name", "gpt-4o", c.REQUEST_MODEL, "gpt-4o"),
        ("llm.token_count.prompt", "7", c.INPUT_TOKENS, "7"),
        ("gen_ai.usage.cache_write.input_tokens", "3", c.CACHE_CREATION_INPUT_TOKENS, "3"),
        ("gen_ai.openai.request.response_format", "json_object", "gen_ai.output.type", "json"),
        ("ai.telemetry.metadata.sessionId", "v-1", c.SESSION_ID, "v-1"),
    ],
)
def test_instrumentation_names_and_value_renames(alias, value, canonical, expected):
    (out,) = run([make_span({alias: value})])
    assert out.attributes[canonical] == expected
    assert out.attributes[alias] == value


def test_langfuse_json_usage_and_cost_become_canonical_attributes():
    span = make_span({
        "langfuse.observation.usage_details": '{"input": 100, "output": 20, "input_cached_tokens": 30}',
        "langfuse.observation.cost_details": '{"input": 0.001, "total": 0.00002}',
    })
    (out,) = run([span])
    a = out.attributes
    assert (a[c.INPUT_TOKENS], a[c.OUTPUT_TOKENS], a[c.CACHE_READ_INPUT_TOKENS]) == ("130", "20", "30")
    assert float(a[c.COST]) == 0.00002 and "e" not in a[c.COST]


@pytest.mark.parametrize(
    "details",
    ["not json", "[1, 2]", '{"input": "ten", "output": true}', "", '{"input": 1e400}',
     '{"input": NaN, "output": -1}'],
)
def test_unusable_langfuse_details_are_kept_and_ignored(details):
    (out,) = run([make_span({"langfuse.observation.usage_details": details})])
    assert out.attributes == {"langfuse.observation.usage_details": details}


def test_instrumentation_metadata_becomes_sessionlens_properties():
    span = make_span({
        "traceloop.association.properties.tenant": "acme",
        "traceloop.association.properties.session_id": "s-9",
        "ai.telemetry.metadata.plan": "pro",
        "sessionlens.property.plan": "from-header",
        "x.ai.telemetry.metadata.other": "not a prefix match",
    })
    (out,) = run([span])
    a = out.attributes
    assert a["sessionlens.property.tenant"] == "acme"
    assert a["sessionlens.property.plan"] == "from-header"  # the canonical key wins
    assert a[c.SESSION_ID] == "s-9" and "sessionlens.property.session_id" not in a
    assert "sessionlens.property.other" not in a


def test_a_value_that_names_no_operation_sets_none():
    (out,) = run([make_span({"openinference.span.kind": "CHAIN"})])
    assert c.OPERATION not in out.attributes


def test_resource_is_normalized_as_a_copy_shared_by_its_spans():
    resource = {"deployment.environment": "prod", c.SERVICE_NAME: "app"}
    spans = [make_span({}, resource), make_span({}, resource)]
    out = run(spans)
    assert out[0].resource[c.ENVIRONMENT] == "prod"
    assert out[0].resource is out[1].resource  # one copy per distinct resource
    assert c.ENVIRONMENT not in resource  # the shared original is untouched


def test_resource_limits_apply_to_a_copy():
    resource = {c.SERVICE_NAME: "x" * 100}
    (out,) = run([make_span({}, resource)], max_attribute_value_size=10)
    assert out.resource[c.SERVICE_NAME] == "x" * 10
    assert out.resource[c.TRUNCATED_ATTRIBUTES] == "1"
    assert resource == {c.SERVICE_NAME: "x" * 100}


def test_clean_resource_is_not_copied():
    resource = {c.SERVICE_NAME: "app"}
    (out,) = run([make_span({}, resource)])
    assert out.resource is resource


def test_long_values_are_truncated_to_bytes_at_a_character_boundary():
    span = make_span({"ascii": "a" * 100, "wide": "é" * 60, "short": "ok", "exact": "b" * 64,
                      "exact-wide": "é" * 32})
    (out,) = run([span], max_attribute_value_size=64)
    a = out.attributes
    assert a["ascii"] == "a" * 64
    assert a["wide"] == "é" * 32  # 2 bytes each: 32 fit in 64 bytes
    assert len("é" * 60) == 60 and len(a["wide"].encode()) == 64
    assert a["short"] == "ok"
    assert a["exact"] == "b" * 64 and a["exact-wide"] == "é" * 32  # at the limit: kept whole
    assert a[c.TRUNCATED_ATTRIBUTES] == "2"


def test_split_multibyte_character_is_dropped_not_mangled():
    (out,) = run([make_span({"k": "a€€"})], max_attribute_value_size=5)  # 1 + 3 + 3 bytes
    assert out.attributes["k"] == "a€"


def test_attribute_count_is_capped_keeping_the_first_in_arrival_order():
    attrs = {f"k{i}": str(i) for i in range(10)}
    attrs["enduser.id"] = "u-1"  # beyond the cap: dropped, so no canonical copy either
    (out,) = run([make_span(attrs)], max_attributes=4)
    a = out.attributes
    assert [k for k in a if k.startswith("k")] == ["k0", "k1", "k2", "k3"]
    assert a[c.DROPPED_ATTRIBUTES] == "7"
    assert c.USER_ID not in a


def test_canonical_copies_come_on_top_of_the_cap():
    (out,) = run([make_span({"enduser.id": "u", "x": "1"})], max_attributes=2)
    assert out.attributes[c.USER_ID] == "u"
    assert c.DROPPED_ATTRIBUTES not in out.attributes


def test_lone_surrogates_become_replacement_characters_in_keys_and_values():
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    span = make_span({"v": bad, bad: "x", "ok": "ünïcode"})
    span.events.append(Event(time_unix_nano=1, name="e", attributes={"m": bad}))
    (out,) = run([span])
    for attrs in (out.attributes, out.events[0].attributes):
        for key, value in attrs.items():
            (key + value).encode("utf-8")  # would raise on a lone surrogate
    assert out.attributes["v"] == "caf\ufffd"
    assert out.attributes["caf\ufffd"] == "x"
    assert out.attributes["ok"] == "ünïcode"


def test_clean_span_is_left_as_it_is():
    attrs = {c.SESSION_ID: "s", c.INPUT_TOKENS: "1"}
    span = make_span(attrs)
    (out,) = run([span])
    assert out.attributes is attrs and attrs == {c.SESSION_ID: "s", c.INPUT_TOKENS: "1"}


@pytest.mark.parametrize(
    "field", ["max_attribute_value_size", "max_attributes", "max_name_size", "max_events", "max_links"]
)
def test_bad_limits_are_rejected_with_the_field_name(field):
    with pytest.raises(ValueError, match=field):
        normalize.NormalizeProcessor(normalize.Config(**{field: 0}))


def _server_span(attributes: dict[str, str]) -> Span:
    span = make_span(attributes)
    span.kind = 2  # SERVER
    return span


@pytest.mark.parametrize(
    ("attrs", "address", "agent"),
    [
        # HTTP semconv before v1.20, as the ASGI/WSGI/Django instrumentations emit by default
        ({"net.peer.ip": "10.1.2.3", "http.user_agent": "Mozilla/5.0"}, "10.1.2.3", "Mozilla/5.0"),
        # the forwarded client (X-Forwarded-For) beats the proxy the server saw
        ({"http.client_ip": "198.51.100.4", "net.peer.ip": "10.0.0.1"}, "198.51.100.4", None),
        # stable names already there win over the old ones
        ({c.CLIENT_ADDRESS: "203.0.113.1", "net.peer.ip": "10.0.0.1",
          c.USER_AGENT: "curl/8", "http.user_agent": "old"}, "203.0.113.1", "curl/8"),
        ({"net.peer.ip": ""}, None, None),  # an empty value names nobody
    ],
)
def test_old_http_names_on_a_server_span_become_client_address_and_user_agent(attrs, address, agent):
    (out,) = run([_server_span(dict(attrs))])
    assert out.attributes.get(c.CLIENT_ADDRESS) == address
    assert out.attributes.get(c.USER_AGENT) == agent
    assert all(out.attributes[k] == v for k, v in attrs.items())  # lossless


def test_net_peer_ip_of_a_client_span_is_the_server_called_and_is_not_a_visitor():
    (out,) = run([make_span({"net.peer.ip": "10.9.9.9", "http.user_agent": "python-httpx/0.27"})])
    assert c.CLIENT_ADDRESS not in out.attributes
    assert c.USER_AGENT not in out.attributes


def test_every_client_string_is_capped_and_counted():
    from sessionlens.collector.pdata import Link

    huge = "é" * (1 << 20)  # 2 MiB of UTF-8 in each
    span = make_span({huge: "v", "ok": huge})
    span.name = span.status_message = span.trace_state = span.scope_name = span.scope_version = huge
    span.events = [Event(5, huge, {huge: huge}) for _ in range(200)]
    span.links = [Link(b"\x01" * 16, b"\x02" * 8, huge, {huge: huge}) for _ in range(150)]
    span.resource = {huge: "r"}
    (out,) = run([span], max_name_size=100, max_attribute_value_size=1000, max_events=3, max_links=2)
    fits = lambda text, n: len(text.encode()) <= n and text == "é" * len(text)  # noqa: E731  cut whole
    (cut_key,) = [k for k in out.attributes if k.startswith("é")]
    assert fits(cut_key, 100) and fits(out.attributes["ok"], 1000)
    assert out.attributes[c.TRUNCATED_ATTRIBUTES] == "2"  # one key, one value
    assert fits(out.name, 100) and fits(out.trace_state, 100) and fits(out.status_message, 1000)
    assert fits(out.scope_name, 100) and fits(out.scope_version, 100)
    assert out.attributes[c.TRUNCATED_FIELDS] == str(5 + 3 + 2)  # the span's five, 3 events, 2 links
    assert len(out.events) == 3 and out.attributes[c.DROPPED_EVENTS] == "197"
    assert len(out.links) == 2 and out.attributes[c.DROPPED_LINKS] == "148"
    for item in (*out.events, *out.links):
        ((key, value),) = [(k, v) for k, v in item.attributes.items() if k != c.TRUNCATED_ATTRIBUTES]
        assert fits(key, 100) and fits(value, 1000) and item.attributes[c.TRUNCATED_ATTRIBUTES] == "1"
    assert all(fits(e.name, 100) for e in out.events) and all(fits(k.trace_state, 100) for k in out.links)
    assert [fits(k, 100) for k in out.resource if k != c.TRUNCATED_ATTRIBUTES] == [True]


def test_short_strings_are_left_alone():
    span = make_span({"k": "v"})
    span.events = [Event(5, "e", {"a": "b"})]
    (out,) = run([span])
    assert out.attributes == {"k": "v"} and out.name == "chat gpt-4o" and out.events[0].name == "e"
