"""The ingest SQL: OTLP requests decoded, checked and inserted by the engine itself.

The collector's hot path keeps each request as the bytes the client sent. Its spool
records (``otlp_ingest.proto``'s ``Record``: the request, the project and one decision
per span) are a ClickHouse ``Protobuf`` stream, and two statements do the per-span work:

- :func:`extract_query` reads records and returns, per span in request order, what the
  Python processors need (ids, times, the session key's parts, the priced fields) and
  whether the span must take the Python path instead (``slow``): anything the SQL
  renderer does not reproduce exactly, or that ``normalize`` would change;
- :func:`insert_query` reads records with their decisions and inserts ``otel_traces``
  rows as the OpenTelemetry Collector's clickhouseexporter writes them (attribute values
  rendered as strings: ints in decimal, doubles as Go's ``FormatFloat(v, 'f', -1)``,
  booleans ``true``/``false``, bytes base64, arrays of scalars as compact JSON).

Both read a file of records (``file()`` on the embedded engine: with a ClickHouse server the
collector renders rows locally and ships them, so the statements run embedded only).
"""

from __future__ import annotations

import os

from sessionlens import conventions as c
from sessionlens.schema.quoting import ident, literal

PROTO_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otlp_ingest.proto")
FORMAT_SCHEMA = f"{PROTO_PATH}:Record"

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
"""As the clickhouseexporter renders them (pdata's SpanKind.String() / StatusCode.String())."""

MAX_TIME_UNIX_NANO = 2**63 - 1
"""The latest timestamp storage holds (ClickHouse ``DateTime64(9)``: 2262-04-11); a span or
event past it could never be inserted, so both paths reject it before it is acknowledged."""

# --- the records' structure (column names are the .proto's field names) -------------

_MEMBER = (
    "Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, "
    "'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)"
)
"""Which member of AnyValue's oneof is set (``input_format_protobuf_oneof_presence``)."""
_SCALARS = "string_value String, bool_value Bool, int_value Int64, double_value Float64"
_ELEMENT = (
    f"Tuple(value {_MEMBER}, {_SCALARS}, array_value String, kvlist_value String, bytes_value String)"
)
_VALUE = (
    f"Tuple(value {_MEMBER}, {_SCALARS}, array_value Tuple(values Array({_ELEMENT})), "
    "kvlist_value String, bytes_value String)"
)
_KVS = f"Array(Tuple(key String, value {_VALUE}))"
_SPAN = (
    "Tuple(trace_id String, span_id String, trace_state String, parent_span_id String, "
    "name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64, "
    f"attributes {_KVS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KVS})), "
    "status Tuple(message String, code Int32))"
)
_REQUEST = (
    f"Tuple(resource_spans Array(Tuple(resource Tuple(attributes {_KVS}), "
    f"scope_spans Array(Tuple(scope Tuple(name String, version String), spans Array({_SPAN}))))))"
)
_DECISIONS = (
    "Array(Tuple(scope_spans Array(Tuple(spans Array(Tuple("
    "session_id String, session_source String, cost String, drop Bool))))))"
)
STRUCTURE = f"request {_REQUEST}, project String, decisions {_DECISIONS}"

SETTINGS = {
    "format_schema": FORMAT_SCHEMA,
    "input_format_protobuf_oneof_presence": 1,
    "input_format_parallel_parsing": 0,  # records in file order: row numbers are positions
    "max_threads": 1,
    "output_format_json_escape_forward_slashes": 0,  # as Python's json module writes "/"
}


def _source(path: str) -> str:
    return f"file({literal(path)}, 'Protobuf', {literal(STRUCTURE)})"


# --- rendering values as the clickhouseexporter does ---------------------------------


def _format_double(x: str) -> str:
    return (
        f"multiIf(isNaN({x}), 'NaN', isInfinite({x}), if({x} > 0, '+Inf', '-Inf'), "
        f"{x} = trunc({x}) AND abs({x}) < 1e16, toString(toInt64({x})), toString({x}))"
    )


def _element_json(e: str) -> str:
    """An array element as Python's ``json`` writes it (elements that are doubles, arrays
    or maps take the Python path: see ``record_slow``)."""
    return (
        f"multiIf({e}.value = 'string_value', toJSONString({e}.string_value), "
        f"{e}.value = 'int_value', toString({e}.int_value), "
        f"{e}.value = 'bool_value', if({e}.bool_value, 'true', 'false'), "
        f"{e}.value = 'bytes_value', concat('\"', base64Encode({e}.bytes_value), '\"'), "
        "'null')"
    )


def _array_json(v: str) -> str:
    return f"concat('[', arrayStringConcat(arrayMap(e -> {_element_json('e')}, {v}.array_value.values), ','), ']')"


def render_value(v: str) -> str:
    """SQL rendering the AnyValue tuple ``v`` as the string stored in the attribute map."""
    return (
        f"multiIf({v}.value = 'string_value', {v}.string_value, "
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'double_value', {_format_double(f'{v}.double_value')}, "
        f"{v}.value = 'bytes_value', base64Encode({v}.bytes_value), "
        f"{v}.value = 'array_value', {_array_json(v)}, '')"
    )


def _render_map(kvs: str) -> str:
    return (
        f"CAST((arrayMap(kv -> kv.key, {kvs}), arrayMap(kv -> {render_value('kv.value')}, {kvs})), "
        "'Map(LowCardinality(String), String)')"
    )


# --- what only the Python path reproduces (or normalize would change) ----------------
# Few, simple expressions over flattened sub-columns: the engine plans each query anew, and
# lambdas over the big nested tuple types cost more to plan than to run.

_SPANS = "request.resource_spans.scope_spans.spans"
_KV_LISTS = (  # every KeyValue collection of a record, as flattenable sub-column paths
    f"{_SPANS}.attributes", "request.resource_spans.resource.attributes",
    f"{_SPANS}.events.attributes", f"{_SPANS}.links.attributes",
)


def _all(suffix: str) -> str:
    """``suffix`` of every KeyValue of the record, flattened into one array."""
    return "arrayConcat(" + ", ".join(f"arrayFlatten({kvs}{suffix})" for kvs in _KV_LISTS) + ")"


def record_slow() -> str:
    """SQL: 1 when some span of the record needs the Python path (``request`` in scope),
    checked per record; :func:`span_slow` holds the checks per span."""
    keys, kinds = _all(".key"), _all(".value.value")
    strings, doubles, blobs = _all(".value.string_value"), _all(".value.double_value"), _all(".value.bytes_value")
    elements = _all(".value.array_value.values.value")
    element_strings = _all(".value.array_value.values.string_value")
    names = (
        f"arrayFlatten({_SPANS}.name)", f"arrayFlatten({_SPANS}.trace_state)",
        "arrayFlatten(request.resource_spans.scope_spans.scope.name)",
        "arrayFlatten(request.resource_spans.scope_spans.scope.version)",
        f"arrayFlatten({_SPANS}.events.name)", f"arrayFlatten({_SPANS}.links.trace_state)", keys,
    )
    texts = (*names, f"arrayFlatten({_SPANS}.status.message)", strings, element_strings)
    span_keys = f"arrayFlatten({_SPANS}.attributes.key)"
    resource_keys = "arrayFlatten(request.resource_spans.resource.attributes.key)"
    counted = f"arrayFlatten({_SPANS}.attributes)"
    d = "d"
    return " OR ".join((
        # text the renderer would store otherwise: invalid UTF-8 ('\n' keeps halves apart)
        f"NOT isValidUTF8(arrayStringConcat(arrayConcat({', '.join(texts)}), '\n'))",
        # limits normalize enforces
        f"arrayMax(t -> length(t), arrayConcat([''], {', '.join(names)})) > {{max_name:UInt64}}",
        f"arrayMax(t -> length(t), arrayConcat([''], {strings}, arrayFlatten({_SPANS}.status.message))) > {{max_value:UInt64}}",
        f"arrayMax(b -> length(b), arrayConcat([''], {blobs})) * 4 > {{max_value:UInt64}} * 3",
        # arrays are rendered as JSON: bounded by 6 bytes per character plus framing
        f"arraySum(t -> length(t) * 6 + 8, {element_strings}) + length({elements}) * 24 > {{max_value:UInt64}}",
        # values only the span path renders: maps, nested arrays, doubles in arrays, and
        # doubles Python writes with an exponent
        "hasAny(CAST(" + kinds + ", 'Array(String)'), ['kvlist_value'])",
        "hasAny(CAST(" + elements + ", 'Array(String)'), ['double_value', 'array_value', 'kvlist_value'])",
        f"arrayExists((k, {d}) -> k = 'double_value' AND NOT (isNaN({d}) OR isInfinite({d})"
        f" OR ({d} = trunc({d}) AND abs({d}) < 1e16)) AND position(toString({d}), 'e') > 0, {kinds}, {doubles})",
        # names normalize maps: aliases, property prefixes, numbers it validates
        f"hasAny({span_keys}, {{aliases:Array(String)}})",
        f"hasAny({resource_keys}, arrayConcat({{aliases:Array(String)}}, {{counts:Array(String)}}, [{literal(c.COST)}]))",
        f"arrayExists(k -> arrayExists(p -> startsWith(k, p), {{prefixes:Array(String)}}), arrayConcat({span_keys}, {resource_keys}))",
        f"arrayExists(kv -> (has({{counts:Array(String)}}, kv.key)"
        " AND NOT (kv.value.value = 'int_value' AND kv.value.int_value >= 0))"
        f" OR (kv.key = {literal(c.COST)} AND NOT ((kv.value.value = 'int_value' AND kv.value.int_value BETWEEN 0 AND {c.MAX_COST_USD:.0f})"
        f" OR (kv.value.value = 'double_value' AND kv.value.double_value BETWEEN 0 AND {c.MAX_COST_USD:.0f}))), {counted})",
        # resources: repeated keys (a Map keeps both, Python the last) or too many
        "arrayExists(l -> length(l) > {max_attributes:UInt64} OR length(arrayDistinct(l)) != length(l),"
        " request.resource_spans.resource.attributes.key)",
        # an empty resource or scope has no span to carry its decisions' nesting
        "has(arrayMap(rs -> length(rs), request.resource_spans.scope_spans), 0)",
        f"has(arrayFlatten(arrayMap(rs -> arrayMap(ss -> length(ss), rs), {_SPANS}.span_id)), 0)",
        # text the span path's extract columns read as strings must be strings
        _not_text(f"{_SPANS}.attributes", EXTRACTED_TEXT),
        _not_text("request.resource_spans.resource.attributes", EXTRACTED_RESOURCE),
    ))


def span_slow() -> str:
    """SQL: 1 when span ``s`` (of resource ``rs``) needs the Python path, beyond
    :func:`record_slow`: invalid ids or times, too many or repeated keys or items."""
    zero16, zero8 = "unhex(repeat('00', 16))", "unhex(repeat('00', 8))"
    return (
        f"length(s.trace_id) != 16 OR s.trace_id = {zero16} OR length(s.span_id) != 8 OR s.span_id = {zero8}"
        " OR length(s.parent_span_id) NOT IN (0, 8)"
        f" OR s.end_time_unix_nano < s.start_time_unix_nano OR s.end_time_unix_nano > {MAX_TIME_UNIX_NANO}"
        f" OR arrayExists(t -> t > {MAX_TIME_UNIX_NANO}, s.events.time_unix_nano)"
        " OR length(s.events) > {max_events:UInt64} OR length(s.links) > {max_links:UInt64}"
        " OR length(s.attributes.key) > {max_attributes:UInt64}"
        " OR length(arrayDistinct(s.attributes.key)) != length(s.attributes.key)"
        " OR (s.kind = 2 AND hasAny(s.attributes.key, {server_aliases:Array(String)}))"
        " OR arrayExists(l -> length(l) > {max_attributes:UInt64} OR length(arrayDistinct(l)) != length(l),"
        " arrayConcat(s.events.attributes.key, s.links.attributes.key))"
    )


def _not_text(kvs: str, keys: tuple[str, ...]) -> str:
    names = "[" + ", ".join(literal(k) for k in keys) + "]"
    return (
        f"arrayExists((k, v) -> has({names}, k) AND v != 'string_value',"
        f" arrayFlatten({kvs}.key), CAST(arrayFlatten({kvs}.value.value), 'Array(String)'))"
    )


EXTRACTED_TEXT = (
    c.SESSION_ID, c.SESSION_SOURCE, c.USER_ID, c.CLIENT_ADDRESS, c.USER_AGENT,
    c.OPERATION, c.PROVIDER, c.RESPONSE_MODEL, c.REQUEST_MODEL,
)
"""Span attributes :func:`extract_query` returns as text (a record where one is not a
string value takes the Python path, so the raw string is the rendered value)."""

EXTRACTED_COUNTS = (
    c.INPUT_TOKENS, c.OUTPUT_TOKENS, c.CACHE_READ_INPUT_TOKENS, c.CACHE_CREATION_INPUT_TOKENS,
)
"""Span attributes returned as numbers, NULL when absent (on the fast path token counts
are non-negative ints: ``record_slow``)."""

EXTRACTED_RESOURCE = (
    c.PROJECT, c.USER_ID, c.CLIENT_ADDRESS, c.USER_AGENT,
    c.SERVICE_NAME, c.SERVICE_INSTANCE_ID, c.HOST_NAME,
)
"""Resource attributes returned as text, with ``process.pid`` (an int or a string)."""


def extract_query(path: str) -> str:
    """One row per span of the records in the file at ``path``, in file and request order:
    what the Python processors need.

    Columns: ``record`` (0-based), ``resource`` and ``scope`` (1-based positions within
    the record, for the decisions' nesting), ``slow`` (1 for every span of a record that
    takes the Python path), ``trace_id`` and ``span_id`` (hex), ``start``, ``end``,
    ``kind``, ``serves`` (the ``serves_requests`` marker is ``true``), ``has_cost``, the
    ``EXTRACTED_TEXT`` attributes ('' when absent), the ``EXTRACTED_COUNTS`` ones (NULL
    when absent), the ``EXTRACTED_RESOURCE`` ones and ``pid``. Parameters: the limits
    (``max_attributes``, ``max_name``, ``max_value``, ``max_events``, ``max_links``) and
    key lists (``aliases``, ``server_aliases``, ``prefixes``, ``counts``).
    """
    slow = record_slow()

    def text(kvs: str, key: str, alias: str) -> str:
        return f"{kvs}.value.string_value[indexOf({kvs}.key, {literal(key)})] AS {ident(alias)}"

    def count(key: str) -> str:
        index = f"indexOf(s.attributes.key, {literal(key)})"
        return f"if({index} = 0, NULL, s.attributes.value.int_value[{index}]) AS {ident(key)}"

    serves = f"indexOf(s.attributes.key, {literal(c.SERVES_REQUESTS)})"
    pid = f"indexOf(rs.resource.attributes.key, {literal(c.PROCESS_PID)})"
    columns = [
        "record", "rsi AS resource", "ssi AS scope", f"record_slow OR ({span_slow()}) AS slow",
        "lower(hex(s.trace_id)) AS trace_id", "lower(hex(s.span_id)) AS span_id",
        "s.start_time_unix_nano AS start", "s.end_time_unix_nano AS end", "s.kind AS kind",
        f"{serves} != 0 AND (s.attributes.value.bool_value[{serves}]"
        f" OR s.attributes.value.string_value[{serves}] = 'true') AS serves",
        f"has(s.attributes.key, {literal(c.COST)}) AS has_cost",
        *(text("s.attributes", key, key) for key in EXTRACTED_TEXT),
        *(count(key) for key in EXTRACTED_COUNTS),
        *(text("rs.resource.attributes", key, "resource." + key) for key in EXTRACTED_RESOURCE),
        f"multiIf({pid} = 0, '', rs.resource.attributes.value.value[{pid}] = 'int_value',"
        f" toString(rs.resource.attributes.value.int_value[{pid}]),"
        f" rs.resource.attributes.value.string_value[{pid}]) AS pid",
    ]
    return (
        f"SELECT {', '.join(columns)} FROM ("
        f"SELECT rowNumberInAllBlocks() AS record, request, {slow} AS record_slow FROM {_source(path)})"
        " ARRAY JOIN request.resource_spans AS rs, arrayEnumerate(request.resource_spans) AS rsi"
        " ARRAY JOIN rs.scope_spans AS ss, arrayEnumerate(rs.scope_spans) AS ssi"
        " ARRAY JOIN ss.spans AS s"
    )


INSERT_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes",
    "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)
"""The clickhouseexporter's traces columns, in its insert's order."""


def _kinds(expr: str, names: tuple[str, ...]) -> str:
    array = "[" + ", ".join(literal(n) for n in names) + "]"
    return f"if({expr} BETWEEN 0 AND {len(names) - 1}, {array}[{expr} + 1], '')"


def select_rows(path: str) -> str:
    """The ``otel_traces`` rows (``INSERT_COLUMNS``) of the records in ``path``.

    Each span gets its decision: the ``session.id``, ``sessionlens.session.source`` and
    ``gen_ai.usage.cost`` it sets (empty: left as sent); a dropped span is not a row. The record's project, when set, replaces the
    resource's ``sessionlens.project``.
    """
    session_id, source, cost, project = (literal(k) for k in (c.SESSION_ID, c.SESSION_SOURCE, c.COST, c.PROJECT))
    attributes = (
        "mapUpdate(span_attributes, CAST((arrayConcat("
        f"if(d.session_id != '', [{session_id}], []), if(d.session_source != '', [{source}], []),"
        f" if(d.cost != '', [{cost}], [])),"
        " arrayConcat(if(d.session_id != '', [d.session_id], []), if(d.session_source != '', [d.session_source], []),"
        " if(d.cost != '', [d.cost], []))), 'Map(LowCardinality(String), String)'))"
    )
    resource = (
        f"if(project != '', mapUpdate(resource_attributes, map({project}, project)), resource_attributes)"
    )
    return (
        "SELECT fromUnixTimestamp64Nano(toInt64(s.start_time_unix_nano)) AS Timestamp,"
        " lower(hex(s.trace_id)) AS TraceId, lower(hex(s.span_id)) AS SpanId,"
        " lower(hex(s.parent_span_id)) AS ParentSpanId, s.trace_state AS TraceState,"
        f" s.name AS SpanName, {_kinds('s.kind', SPAN_KINDS)} AS SpanKind,"
        f" resource_attributes_final[{literal(c.SERVICE_NAME)}] AS ServiceName,"
        " resource_attributes_final AS ResourceAttributes,"
        " ss.scope.name AS ScopeName, ss.scope.version AS ScopeVersion,"
        f" {attributes} AS SpanAttributes,"
        " s.end_time_unix_nano - s.start_time_unix_nano AS Duration,"
        f" {_kinds('s.status.code', STATUS_CODES)} AS StatusCode, s.status.message AS StatusMessage,"
        " arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), s.events) AS `Events.Timestamp`,"
        " arrayMap(e -> e.name, s.events) AS `Events.Name`,"
        f" arrayMap(e -> {_render_map('e.attributes')}, s.events) AS `Events.Attributes`,"
        " arrayMap(k -> lower(hex(k.trace_id)), s.links) AS `Links.TraceId`,"
        " arrayMap(k -> lower(hex(k.span_id)), s.links) AS `Links.SpanId`,"
        " arrayMap(k -> k.trace_state, s.links) AS `Links.TraceState`,"
        f" arrayMap(k -> {_render_map('k.attributes')}, s.links) AS `Links.Attributes`"
        " FROM ("
        f"SELECT ss, s, d, {_render_map('s.attributes')} AS span_attributes, resource_attributes_final"
        " FROM ("
        f"SELECT ss, sd, {resource} AS resource_attributes_final"
        " FROM ("
        f"SELECT ss, sd, project, {_render_map('rs.resource.attributes')} AS resource_attributes"
        f" FROM {_source(path)}"
        " ARRAY JOIN request.resource_spans AS rs, decisions AS rd"
        " ARRAY JOIN rs.scope_spans AS ss, rd.scope_spans AS sd))"
        " ARRAY JOIN ss.spans AS s, sd.spans AS d"
        " WHERE NOT d.drop)"
    )
