"""The ``normalize`` processor: other instrumentations' names → canonical keys, and limits.

For every span (and each distinct resource of a batch):

- Aliases (``conventions.ALIASES`` and ``conventions.INSTRUMENTATION_ALIASES``:
  OpenLLMetry, OpenInference, Vercel AI, Langfuse, the Anthropic SDK and deprecated GenAI
  names) are copied to their canonical key, with value renames from
  ``conventions.VALUE_ALIASES`` (``gen_ai.system=az.ai.openai`` → ``gen_ai.provider.name=
  azure.ai.openai``). A canonical key already present wins; among aliases the first listed
  wins. The Langfuse SDK's JSON ``usage_details``/``cost_details`` become token and cost
  attributes; OpenLLMetry's and Vercel AI's metadata (``traceloop.association.properties.
  <name>``, ``ai.telemetry.metadata.<name>``) also become ``sessionlens.property.<name>``.
  The alias attribute itself is kept: normalizing is lossless, so queries and
  dashboards written against another instrumentation's names keep working and nothing a
  user sent is lost; the cost is a few duplicated values per span.
- HTTP names of the semantic conventions before v1.20 (``conventions.HTTP_SERVER_ALIASES``:
  ``http.client_ip``, ``net.peer.ip``, ``http.user_agent``) become ``client.address`` and
  ``user_agent.original`` on SERVER spans, where they name the visitor; on other spans
  ``net.peer.ip`` is the address of the server called, so they are left alone there.
- Limits: at most ``max_attributes`` attributes as received (the first ones in arrival
  order, like the OpenTelemetry SDK; the rest dropped and counted in
  ``sessionlens.dropped_attributes_count``). Canonical copies and the markers of the
  collector's processors come on top of the limit, so they are never the ones dropped.
  Values longer than ``max_attribute_value_size`` **bytes of UTF-8** (the storage limit is
  bytes, and a byte cap bounds memory however wide the characters) are cut at a character
  boundary, keys longer than ``max_name_size`` too; ``sessionlens.truncated_attributes``
  counts them. The same limits hold for event and link attributes.
- Every other string a client controls is capped as well, counted in
  ``sessionlens.truncated_fields``: span, event and scope names, the scope version and
  trace states at ``max_name_size``, the status message at ``max_attribute_value_size``.
  At most ``max_events`` events and ``max_links`` links are kept (the first ones, like the
  OpenTelemetry SDK's span limits), the rest counted in ``sessionlens.dropped_events_count``
  and ``sessionlens.dropped_links_count``.
- Numbers: a token count (``conventions.TOKEN_COUNTS`` and their aliases) must be a decimal
  integer from 0 to ``MAX_TOKEN_COUNT``, a cost (``gen_ai.usage.cost`` and aliases) a number
  from 0 to ``MAX_COST_USD``. Any other value (``NaN``, ``-1000000``, a 401-digit count,
  ``1.7e308``) is removed before the aliases are copied, and ``sessionlens.invalid_numbers``
  names it with the reason, so no sum in the views or the cost processor can turn NaN,
  negative, infinite or wrap around. Values taken from Langfuse's JSON obey the same bounds.
- Text: the receiver decodes invalid UTF-8 with ``errors="replace"``; any lone surrogate
  still in a key or value (e.g. from ``surrogateescape`` decoding) becomes U+FFFD, so every
  string can be encoded as UTF-8 by the exporter.

Span attribute dicts are changed in place; a resource dict (shared by the spans of one
OTLP ResourceSpans) is never mutated: when it needs a change, its spans get one normalized
copy per distinct resource of the batch.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import islice

from sessionlens import conventions as c
from sessionlens.collector.component import Capabilities, Consumer, Processor, Settings
from sessionlens.collector.pdata import Span
from sessionlens.collector.processorhelper import FunctionProcessor
from sessionlens.processors.cost import format_cost

TYPE = "normalize"

_SURROGATE = re.compile("[\ud800-\udfff]")
_SERVER = 2  # OTLP SpanKind SERVER


@dataclass
class Config:
    max_attribute_value_size: int = 65536
    """Bytes (UTF-8) per attribute value; longer values are truncated."""
    max_attributes: int = 128
    """Attributes kept per span, resource, event or link, as received."""
    max_name_size: int = 1024
    """Bytes (UTF-8) per attribute key, span, event or scope name, scope version and trace
    state; longer ones are truncated."""
    max_events: int = 128
    """Events kept per span."""
    max_links: int = 128
    """Links kept per span."""

    def __post_init__(self) -> None:
        for name in ("max_attribute_value_size", "max_name_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 byte, got {getattr(self, name)}")
        for name in ("max_attributes", "max_events", "max_links"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def _alias_table() -> dict[str, tuple[str, dict[str, str] | None]]:
    """alias -> (canonical key, value renames), in order of preference."""
    table: dict[str, tuple[str, dict[str, str] | None]] = {}
    for aliases_of in (c.ALIASES, c.INSTRUMENTATION_ALIASES):
        for canonical, aliases in aliases_of.items():
            for alias in aliases:
                table.setdefault(alias, (canonical, c.VALUE_ALIASES.get(alias)))
    return table


_LANGFUSE_KEYS = frozenset({c.LANGFUSE_USAGE_DETAILS, c.LANGFUSE_COST_DETAILS})


def _alias_keys(aliases: dict) -> frozenset[str]:
    """Every key this processor copies to another (an alias, Langfuse's JSON details)."""
    return frozenset(aliases) | _LANGFUSE_KEYS
# Searched in the span's keys joined with NUL, so a match is at the start of a key.
_PROPERTY_PROBES = tuple("\0" + prefix for prefix in c.PROPERTY_ALIAS_PREFIXES)


def _numeric_names() -> dict[str, bool]:
    """Every name a token count or cost may arrive under → True for a cost, False for a count."""
    names: dict[str, bool] = {}
    for canonical in (*c.TOKEN_COUNTS, c.COST):
        for name in (canonical, *c.ALIASES.get(canonical, ()), *c.INSTRUMENTATION_ALIASES.get(canonical, ())):
            names[name] = canonical == c.COST
    return names


_NUMERIC_NAMES = _numeric_names()
_NUMERIC_KEYS = frozenset(_NUMERIC_NAMES)
_MAX_COUNT_DIGITS = len(str(c.MAX_TOKEN_COUNT))


def _count_problem(text: str) -> str | None:
    """Why ``text`` is no token count (None: it is one)."""
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0")
        if len(digits) < _MAX_COUNT_DIGITS or (
            len(digits) == _MAX_COUNT_DIGITS and int(digits) <= c.MAX_TOKEN_COUNT
        ):
            return None
        return "out of range"
    try:
        number = float(text)
    except ValueError:
        return "not a number"
    if math.isnan(number):
        return "NaN"
    if number < 0:
        return "negative"
    return "out of range" if number > c.MAX_TOKEN_COUNT else "not a decimal integer"


def _cost_problem(text: str) -> str | None:
    """Why ``text`` is no cost in USD (None: it is one)."""
    try:
        number = float(text)
    except ValueError:
        return "not a number"
    if math.isnan(number):
        return "NaN"
    if number < 0:
        return "negative"
    return "out of range" if number > c.MAX_COST_USD else None


def _drop_invalid_numbers(attrs: dict[str, str], names: set[str]) -> None:
    invalid = {}
    for name in sorted(names):
        problem = (_cost_problem if _NUMERIC_NAMES[name] else _count_problem)(attrs[name])
        if problem is not None:
            del attrs[name]
            invalid[name] = problem
    if invalid:
        _note_invalid(attrs, invalid)


def _note_invalid(attrs: dict[str, str], invalid: dict[str, str]) -> None:
    previous = attrs.get(c.INVALID_NUMBERS)
    if previous:
        invalid = {**json.loads(previous), **invalid}
    attrs[c.INVALID_NUMBERS] = json.dumps(invalid, separators=(",", ":"), sort_keys=True)


def _json_numbers(text: str | None) -> dict[str, float]:
    """The numeric fields of a JSON object attribute (none when it is not one)."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        k: v for k, v in value.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
    }


def _apply_langfuse_details(attrs: dict[str, str]) -> None:
    """Tokens and cost from the Langfuse SDK's JSON attributes (a canonical key wins)."""
    usage = _json_numbers(attrs.get(c.LANGFUSE_USAGE_DETAILS))
    cached = next((usage[k] for k in c.LANGFUSE_USAGE_CACHED if k in usage), 0)
    counts = {}
    if c.LANGFUSE_USAGE_INPUT in usage:  # Langfuse's input leaves cached tokens out
        counts[c.INPUT_TOKENS] = usage[c.LANGFUSE_USAGE_INPUT] + cached
    if c.LANGFUSE_USAGE_OUTPUT in usage:
        counts[c.OUTPUT_TOKENS] = usage[c.LANGFUSE_USAGE_OUTPUT]
    if cached:
        counts[c.CACHE_READ_INPUT_TOKENS] = cached
    invalid = {}
    for key, count in counts.items():
        if key in attrs:
            continue
        if count > c.MAX_TOKEN_COUNT:  # also a sum of two finite floats that overflowed
            invalid[key] = "out of range"
        else:
            attrs[key] = str(int(count))
    cost = _json_numbers(attrs.get(c.LANGFUSE_COST_DETAILS)).get(c.LANGFUSE_COST_TOTAL)
    if cost is not None and c.COST not in attrs:
        if cost > c.MAX_COST_USD:
            invalid[c.COST] = "out of range"
        else:
            attrs[c.COST] = format_cost(cost)
    if invalid:
        _note_invalid(attrs, invalid)


def _apply_server_aliases(attrs: dict[str, str]) -> None:
    """A SERVER span's old HTTP names → ``client.address``/``user_agent.original`` (canonical wins)."""
    for canonical, aliases in c.HTTP_SERVER_ALIASES.items():
        if canonical not in attrs:
            for alias in aliases:
                value = attrs.get(alias)
                if value:
                    attrs[canonical] = value
                    break


def _cut(text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` bytes of UTF-8, cut at a character boundary."""
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")  # a split character's tail dropped


def _rename_value(value: str, renames: dict[str, str]) -> str:
    lowered = value.lower()
    renamed = renames.get(lowered)
    if renamed is None:
        renamed = renames.get(lowered.partition(".")[0], value)
    return renamed


class NormalizeProcessor:
    """Canonical names, attribute limits and valid text; stateless, safe from any thread."""

    def __init__(self, config: Config) -> None:
        self._max_bytes = config.max_attribute_value_size
        # A string of n characters is at most 4n bytes of UTF-8, so up to this many
        # characters no value needs encoding to check its size.
        self._safe_chars = config.max_attribute_value_size // 4
        self._max_name = config.max_name_size
        self._safe_name_chars = config.max_name_size // 4
        self._max_attributes = config.max_attributes
        self._max_events = config.max_events
        self._max_links = config.max_links
        self._aliases = _alias_table()
        self._alias_keys = _alias_keys(self._aliases)
        self._rank = {alias: i for i, alias in enumerate(self._aliases)}

    def process_columns(self, spans) -> None:
        """The engine path holds only spans this processor leaves as they are."""

    def process(self, spans: list[Span]) -> list[Span]:
        resources: dict[int, dict[str, str]] = {}  # id(original) -> normalized, this batch
        for span in spans:
            span.attributes = self._normalize(span.attributes)
            if span.kind == _SERVER:
                _apply_server_aliases(span.attributes)
            resource = span.resource
            normalized = resources.get(id(resource))
            if normalized is None:
                normalized = resources[id(resource)] = self._normalize_resource(resource)
            span.resource = normalized
            safe = self._safe_name_chars
            if (
                len(span.name) > safe
                or len(span.status_message) > self._safe_chars
                or len(span.trace_state) > safe
                or len(span.scope_name) > safe
                or len(span.scope_version) > safe
                or span.events
                or span.links
            ):
                self._limit_fields(span)
        return spans

    def _limit_fields(self, span: Span) -> None:
        """Cap the span's own strings, its events and its links (rarely needed: checked first)."""
        name_bytes, cut = self._max_name, 0

        def capped(text: str, max_bytes: int) -> str:
            nonlocal cut
            if len(text) * 4 <= max_bytes:
                return text
            shorter = _cut(text, max_bytes)
            cut += shorter is not text
            return shorter

        span.name = capped(span.name, name_bytes)
        span.status_message = capped(span.status_message, self._max_bytes)
        span.trace_state = capped(span.trace_state, name_bytes)
        span.scope_name = capped(span.scope_name, name_bytes)
        span.scope_version = capped(span.scope_version, name_bytes)
        attrs = span.attributes
        if len(span.events) > self._max_events:
            attrs[c.DROPPED_EVENTS] = str(len(span.events) - self._max_events)
            span.events = span.events[: self._max_events]
        for event in span.events:
            event.name = capped(event.name, name_bytes)
            event.attributes = self._limit(event.attributes)
        if len(span.links) > self._max_links:
            attrs[c.DROPPED_LINKS] = str(len(span.links) - self._max_links)
            span.links = span.links[: self._max_links]
        for link in span.links:
            link.trace_state = capped(link.trace_state, name_bytes)
            link.attributes = self._limit(link.attributes)
        if cut:
            attrs[c.TRUNCATED_FIELDS] = str(cut)

    def _normalize(self, attrs: dict[str, str]) -> dict[str, str]:
        keys = "\0" + "\0".join(attrs)
        if not self._is_clean(attrs, keys):
            attrs = self._limited(attrs)
        numbers = _NUMERIC_KEYS.intersection(attrs)
        if numbers:
            _drop_invalid_numbers(attrs, numbers)
        hits = self._alias_keys.intersection(attrs)
        if hits:
            self._apply_aliases(attrs, hits)
        # ``keys`` may predate the limits and the aliases: neither adds a prefixed key, and
        # a stale match only costs a scan that finds nothing.
        for probe in _PROPERTY_PROBES:  # a loop: cheaper than any() over a generator
            if probe in keys:
                self._apply_property_prefixes(attrs)
                break
        return attrs

    def _normalize_resource(self, resource: dict[str, str]) -> dict[str, str]:
        if (
            self._is_clean(resource, "".join(resource))
            and self._alias_keys.isdisjoint(resource)
            and _NUMERIC_KEYS.isdisjoint(resource)
        ):
            return resource
        return self._normalize(dict(resource))

    def _apply_property_prefixes(self, attrs: dict[str, str]) -> None:
        for key, value in list(attrs.items()):
            if key in self._aliases:
                continue  # e.g. traceloop's session_id: already a canonical key's alias
            for prefix in c.PROPERTY_ALIAS_PREFIXES:
                if key.startswith(prefix) and len(key) > len(prefix):
                    attrs.setdefault(c.PROPERTY_PREFIX + key[len(prefix):], value)
                    break

    def _apply_aliases(self, attrs: dict[str, str], hits: set[str]) -> None:
        if not _LANGFUSE_KEYS.isdisjoint(hits):
            _apply_langfuse_details(attrs)
            hits = hits - _LANGFUSE_KEYS
        aliases = self._aliases
        for alias in sorted(hits, key=self._rank.__getitem__) if len(hits) > 1 else hits:
            canonical, renames = aliases[alias]
            if canonical in attrs:
                continue
            value = attrs[alias]
            if renames is not None:
                value = _rename_value(value, renames)
            if value:
                attrs[canonical] = value

    def _is_clean(self, attrs: dict[str, str], keys: str) -> bool:
        """True when no limit or text rule applies to ``attrs`` (``keys``: its keys joined).

        The common case, checked in C loops: one join per span beats a Python-level loop;
        an all-ASCII string has no surrogates and as many bytes as characters.
        """
        if len(attrs) > self._max_attributes:
            return False
        values = "".join(attrs.values())
        if not (values.isascii() and keys.isascii()):
            return False
        if len(keys) > self._safe_name_chars and max(map(len, attrs)) > self._max_name:
            return False
        return len(values) <= self._safe_chars or max(map(len, attrs.values())) <= self._max_bytes

    def _limit(self, attrs: dict[str, str]) -> dict[str, str]:
        """``attrs`` within the limits and free of lone surrogates (the same dict if it was)."""
        return attrs if self._is_clean(attrs, "".join(attrs)) else self._limited(attrs)

    def _limited(self, attrs: dict[str, str]) -> dict[str, str]:
        """A copy of ``attrs`` within the limits and free of lone surrogates."""
        dropped = len(attrs) - self._max_attributes
        if dropped > 0:
            attrs = dict(islice(attrs.items(), self._max_attributes))
        result: dict[str, str] = {}
        truncated = 0
        for key, value in attrs.items():
            if not key.isascii():
                key = _SURROGATE.sub("\ufffd", key)
            if not value.isascii():
                value = _SURROGATE.sub("\ufffd", value)
            cut = False
            if len(key) > self._safe_name_chars:
                shorter = _cut(key, self._max_name)
                cut, key = shorter is not key, shorter
            if len(value) > self._safe_chars:
                shorter = _cut(value, self._max_bytes)
                cut, value = cut or shorter is not value, shorter
            truncated += cut
            result[key] = value
        if truncated:
            result[c.TRUNCATED_ATTRIBUTES] = str(truncated)
        if dropped > 0:
            result[c.DROPPED_ATTRIBUTES] = str(dropped)
        return result


def capabilities(config: Config) -> Capabilities:
    """Columns too, with the extract's rules for what this processor would change (a span
    it would change takes the span path, ``schema/ingest.py``): a limit reached, an alias,
    a property prefix, an old HTTP name on a SERVER span, an invalid token count or cost."""
    return Capabilities(columns=True, extract_parameters={
        "max_attributes": config.max_attributes,
        "max_name": config.max_name_size,
        "max_value": config.max_attribute_value_size,
        "max_events": config.max_events,
        "max_links": config.max_links,
        "aliases": sorted(_alias_keys(_alias_table())),
        "server_aliases": sorted({a for aliases in c.HTTP_SERVER_ALIASES.values() for a in aliases}),
        "prefixes": list(c.PROPERTY_ALIAS_PREFIXES),
        "counts": sorted(name for name, is_cost in _NUMERIC_NAMES.items() if not is_cost),
    })


def create(config: Config, settings: Settings, next_consumer: Consumer) -> Processor:
    """A normalize processor for ``config``, handing on to ``next_consumer``."""
    processor = NormalizeProcessor(config)
    return FunctionProcessor(settings, next_consumer, processor.process, process_columns=processor.process_columns)
