"""The engine path stores exactly the rows the span path (the Python reference) stores.

Random valid OTLP requests — every AnyValue kind, unicode, control characters, huge and
odd numbers, events, links, several resources and scopes — go both ways into tables of
the real schema on chDB:

- the engine path: spool records → ``extract_query`` → ``select_rows`` inserted by the
  engine, for every request the extract does not send to the span path;
- the reference: ``otlp.decode`` → ``to_columns`` → a columnar insert, as the span path
  exporter writes them;

and the stored rows are compared column by column. A request whose spans ``normalize``
would change must be sent to the span path (``slow``), since the engine path stores the
request as received.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from sessionlens import conventions as c
from sessionlens import storage
from sessionlens.collector import clickhouse_exporter, otlp, records
from sessionlens.collector.engine import DEFAULT_PARAMETERS, SpanColumns
from sessionlens.processors import normalize
from sessionlens.schema import ingest, migrate

ROW_COLUMNS = clickhouse_exporter.COLUMNS
NORMALIZE = normalize.NormalizeProcessor(normalize.Config())
PARAMETERS = {**DEFAULT_PARAMETERS, **normalize.capabilities(normalize.Config()).extract_parameters}


@pytest.fixture(scope="module")
def client(chdb_url):
    client = storage.connect(chdb_url)  # one embedded store per process: the session's
    for database in ("eng", "ref"):
        migrate.apply(client, migrate.SchemaOptions(database=database))
    yield client
    for database in ("eng", "ref"):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    client.close()


# --- random requests -------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "/path/x", 'quo"te', "back\\slash", "new\nline\t", "\u2028", "é漢字🙂", "\x00\x1f\x7f"]
)
keys = st.sampled_from([
    c.SESSION_ID, c.USER_ID, c.OPERATION, c.PROVIDER, c.REQUEST_MODEL, c.RESPONSE_MODEL,
    c.INPUT_TOKENS, c.OUTPUT_TOKENS, c.COST, c.CLIENT_ADDRESS, c.SERVES_REQUESTS, "app.k1",
    "app.k2", "llm.request.model", "traceloop.association.properties.plan", "http.user_agent",
]) | texts
doubles = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.231, 1e16, 1e-7, -0.0, 2.5e15])
ints = st.integers(-(2**63), 2**63 - 1)


def _scalar(value: AnyValue, draw) -> None:
    kind = draw(st.sampled_from(["string", "int", "double", "bool", "bytes", "none"]))
    if kind == "string":
        value.string_value = draw(texts)
    elif kind == "int":
        value.int_value = draw(ints)
    elif kind == "double":
        value.double_value = draw(doubles)
    elif kind == "bool":
        value.bool_value = draw(st.booleans())
    elif kind == "bytes":
        value.bytes_value = draw(st.binary(max_size=8))


@st.composite
def any_values(draw, value: AnyValue) -> None:
    kind = draw(st.sampled_from(["scalar"] * 12 + ["array"] * 3 + ["kvlist", "nested"]))
    if kind == "scalar":
        _scalar(value, draw)
    elif kind == "array":
        value.array_value.SetInParent()
        for _ in range(draw(st.integers(0, 3))):
            _scalar(value.array_value.values.add(), draw)
    elif kind == "kvlist":
        kv = value.kvlist_value.values.add()
        kv.key, kv.value.string_value = "a", draw(texts)
    else:
        value.array_value.values.add().array_value.values.add().int_value = 1


def _attributes(draw, target, most: int = 6) -> None:
    for _ in range(draw(st.integers(0, most))):
        kv = target.add()
        kv.key = draw(keys)  # a key repeated, an alias, a prefix: the span path's
        draw(any_values(kv.value))


@st.composite
def requests(draw) -> bytes:
    request = ExportTraceServiceRequest()
    n = 0
    for _ in range(draw(st.integers(1, 2))):
        resource_spans = request.resource_spans.add()
        _attributes(draw, resource_spans.resource.attributes, 3)
        for _ in range(draw(st.integers(1, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name, scope_spans.scope.version = draw(texts), draw(texts)
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                span = scope_spans.spans.add()
                span.trace_id = draw(st.sampled_from([b"\x01" * 16] * 8 + [b"\x02" * 16] * 8 + [bytes(16), b"\x03" * 15]))
                span.span_id = n.to_bytes(8, "big")
                span.parent_span_id = draw(st.sampled_from([b"", b"\x09" * 8]))
                span.name, span.trace_state = draw(texts), draw(st.sampled_from(["", "k=v"]))
                span.kind = draw(st.integers(0, 6))
                span.start_time_unix_nano = draw(st.integers(0, 2**62))
                span.end_time_unix_nano = span.start_time_unix_nano + draw(st.integers(0, 10**12))
                span.status.code = draw(st.integers(0, 3))
                span.status.message = draw(texts)
                _attributes(draw, span.attributes)
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add()
                    event.time_unix_nano, event.name = draw(st.integers(0, 2**62)), draw(texts)
                    _attributes(draw, event.attributes, 2)
                for _ in range(draw(st.integers(0, 1))):
                    link = span.links.add()
                    link.trace_id, link.span_id = b"\x05" * 16, b"\x06" * 8
                    link.trace_state = draw(st.sampled_from(["", "a=b"]))
                    _attributes(draw, link.attributes, 2)
    return request.SerializeToString()


# --- both paths --------------------------------------------------------------------------


def _write(data: bytes) -> str:
    fd, path = tempfile.mkstemp(suffix=".records")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return path


def _engine(client, body: bytes, project: str | None) -> bool:
    """Insert ``body`` by the engine path into ``eng``; False when it is sent to the span path."""
    path = _write(records.record(body, project))
    try:
        result = client.query(
            ingest.extract_query(path), parameters=PARAMETERS, settings=ingest.SETTINGS, column_oriented=True
        )
    finally:
        os.unlink(path)
    columns = dict(zip(result.column_names, result.result_columns))
    if not columns or any(columns["slow"]):
        return False
    from sessionlens.collector.pdata import Request

    spans = SpanColumns([Request(body, project)], {k: list(v) for k, v in columns.items()})
    [(data, _)] = spans.encoded()
    path = _write(data)
    try:
        names = ", ".join(f"`{n}`" for n in ingest.INSERT_COLUMNS)
        client.command(f"INSERT INTO eng.otel_traces ({names}) {ingest.select_rows(path)}", settings=ingest.SETTINGS)
    finally:
        os.unlink(path)
    return True


def _reference(client, body: bytes, project: str | None) -> list:
    decoded = otlp.decode(otlp.parse_protobuf(body), {c.PROJECT: project} if project else None)
    if decoded.spans:
        client.insert(
            table="otel_traces", database="ref", data=clickhouse_exporter.to_columns(decoded.spans),
            column_names=ROW_COLUMNS, column_oriented=True,
        )
    return decoded.spans


def _rows(client, database: str) -> list[tuple]:
    names = ", ".join(f"`{n}`" for n in ROW_COLUMNS)
    return client.query(
        f"SELECT {names} FROM {database}.otel_traces ORDER BY TraceId, SpanId, Timestamp"
    ).result_rows


def _comparable(row: tuple) -> tuple:
    def norm(value):
        if isinstance(value, dict):
            return tuple(sorted(value.items()))
        if isinstance(value, list):
            return tuple(norm(v) for v in value)
        return value

    return tuple(norm(v) for v in row)


def _normalize_changes(spans) -> bool:
    before = copy.deepcopy(spans)
    after = NORMALIZE.process(copy.deepcopy(spans))
    return any(
        (a.attributes, a.resource, a.name, a.status_message, a.scope_name, a.scope_version, a.trace_state,
         [(e.name, e.attributes) for e in a.events], [(k.trace_state, k.attributes) for k in a.links])
        != (b.attributes, b.resource, b.name, b.status_message, b.scope_name, b.scope_version, b.trace_state,
            [(e.name, e.attributes) for e in b.events], [(k.trace_state, k.attributes) for k in b.links])
        for a, b in zip(after, before)
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=requests(), project=st.sampled_from([None, "acme"]))
def test_the_engine_path_stores_what_the_span_path_stores(client, body, project):
    for database in ("eng", "ref"):
        client.command(f"TRUNCATE TABLE {database}.otel_traces")
    fast = _engine(client, body, project)
    spans = _reference(client, body, project)
    event("engine path" if fast else "span path")
    if not fast:
        return
    decoded = otlp.decode(otlp.parse_protobuf(body))
    assert decoded.rejected == 0, "a request with invalid spans must take the span path"
    assert not _normalize_changes(spans), "a request normalize changes must take the span path"
    engine_rows, reference_rows = _rows(client, "eng"), _rows(client, "ref")
    assert len(engine_rows) == len(reference_rows) == len(spans)
    for engine_row, reference_row in zip(engine_rows, reference_rows):
        for name, got, want in zip(ROW_COLUMNS, _comparable(engine_row), _comparable(reference_row)):
            if isinstance(want, float) and math.isnan(want):
                assert isinstance(got, float) and math.isnan(got), name
            else:
                assert got == want, name


def test_realistic_llm_spans_take_the_engine_path(client):
    """The common case is the fast one: sessionlens's own spans are not sent to Python."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    try:
        import ingest as bench  # the ingest benchmark's realistic request
    finally:
        sys.path.pop(0)
    for database in ("eng", "ref"):
        client.command(f"TRUNCATE TABLE {database}.otel_traces")
    body = bench.template(50, 1_700_000_000_000_000_000)
    assert _engine(client, body, "acme")
    _reference(client, body, "acme")
    assert [_comparable(r) for r in _rows(client, "eng")] == [_comparable(r) for r in _rows(client, "ref")]


def test_a_malformed_request_does_not_send_its_batch_down_the_span_path(client, chdb_url):
    """A batch with one body the engine cannot read: the others still take the engine
    path; the bad one is decoded in Python, which says it is malformed."""
    from sessionlens.collector.engine import Decoder
    from sessionlens.collector.pdata import Batch, Request

    def good(trace: int) -> bytes:
        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for i in range(3):
            span = scope.spans.add()
            span.trace_id, span.span_id = trace.to_bytes(16, "big"), (trace * 10 + i + 1).to_bytes(8, "big")
            span.name, span.start_time_unix_nano, span.end_time_unix_nano = "chat", 10**18, 10**18 + 5
            kv = span.attributes.add()
            kv.key, kv.value.string_value = c.OPERATION, "chat"
        return request.SerializeToString()

    bad = Request(b"\x0a\xff\xff")
    batch = Batch(requests=[Request(good(1)), bad, Request(good(2))])
    decoder = Decoder(lambda: storage.connect(chdb_url, **ingest.SETTINGS), {})
    try:
        decoder.decode(batch)
    finally:
        decoder.close()
    assert bad.malformed and "not an OTLP" in bad.malformed
    assert batch.spans == []
    assert batch.columns is not None and len(batch.columns) == 6
    assert sorted(set(batch.columns.columns["trace_id"])) == [(1).to_bytes(16, "big").hex(), (2).to_bytes(16, "big").hex()]
