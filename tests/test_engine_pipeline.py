"""The collector with ``engine_path: true`` stores what it stores with it off.

The same requests — realistic LLM spans, a span of another instrumentation (an alias
``normalize`` maps), an invalid span, a malformed body, a retried request — go through
the real collector (OTLP/gRPC, batch → normalize → autosession → cost → clickhouse) once
per path, each into its own database of one store; the stored rows, the sessions and the
partial-success answers must be the same.
"""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions as c
from sessionlens import storage
from sessionlens.collector import clickhouse_exporter
from sessionlens.collector.otlp_grpc import export_stub
from tests.collector_setup import grpc_port, start_pipeline

NOW = 1_764_000_000_000_000_000


def _request(trace: int, spans: int, *, alias: bool = False, invalid: bool = False) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in {c.SERVICE_NAME: "bot", c.SERVICE_INSTANCE_ID: "pod-1"}.items():
        kv = resource_spans.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "sessionlens.instrumentation"
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = trace.to_bytes(16, "big")
        span.span_id = (trace * 100 + i + 1).to_bytes(8, "big")
        span.name, span.kind = "chat gpt-4o-mini", 3
        span.start_time_unix_nano = NOW + trace * 10**9 + i * 10**6
        span.end_time_unix_nano = span.start_time_unix_nano + 5 * 10**8
        for key, value in {c.OPERATION: "chat", c.PROVIDER: "openai", c.REQUEST_MODEL: "gpt-4o-mini",
                           c.USER_ID: f"user-{trace % 3}"}.items():
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
        if i % 2:
            kv = span.attributes.add()
            kv.key, kv.value.string_value = c.SESSION_ID, f"conv-{trace}"
        for key, value in {c.INPUT_TOKENS: 1000 + i, c.OUTPUT_TOKENS: 100}.items():
            kv = span.attributes.add()
            kv.key, kv.value.int_value = key, value
        kv = span.attributes.add()
        kv.key = c.FINISH_REASONS
        kv.value.array_value.values.add().string_value = "stop"
    if alias:
        kv = scope.spans[0].attributes.add()
        kv.key, kv.value.string_value = "llm.request.model", "gpt-4o"
    if invalid:
        scope.spans[-1].span_id = bytes(8)
    return request.SerializeToString()


BODIES = [_request(t, 5) for t in range(1, 9)] + [
    _request(20, 3, alias=True), _request(21, 4, invalid=True), b"\x0a\xff\xff", _request(1, 5),
]


def _run(chdb_url: str, database: str, spool, engine_path: bool) -> list:
    pipeline = start_pipeline(chdb_url, database, spool, engine_path=engine_path)
    answers = []
    try:
        assert pipeline.host.engine_path is engine_path
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port(pipeline)}") as channel:
            export = export_stub(channel)
            for body in BODIES:
                try:
                    response = export(body, timeout=30)
                    answers.append((response.partial_success.rejected_spans, response.partial_success.error_message))
                except grpc.RpcError as exc:
                    answers.append((exc.code(), exc.details()[:40]))
    finally:
        pipeline.shutdown()
    return answers


def _rows(client, database: str) -> list:
    names = ", ".join(f"`{n}`" for n in clickhouse_exporter.COLUMNS)
    rows = client.query(f"SELECT {names} FROM {database}.otel_traces ORDER BY SpanId").result_rows
    return [tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in row) for row in rows]


@pytest.fixture
def databases(chdb_url):
    client = storage.connect(chdb_url)
    for name in ("engine_on", "engine_off"):
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    yield client
    for name in ("engine_on", "engine_off"):
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    client.close()


def test_the_engine_path_stores_and_answers_as_the_span_path(chdb_url, databases, tmp_path):
    on = _run(chdb_url, "engine_on", tmp_path / "spool-on", True)
    off = _run(chdb_url, "engine_off", tmp_path / "spool-off", False)
    assert on == off
    assert on[-3][0] == 1 and "span_id is all zero" in on[-3][1]  # the invalid span alone
    assert on[-2][0] == grpc.StatusCode.INVALID_ARGUMENT
    client = databases
    rows_on, rows_off = _rows(client, "engine_on"), _rows(client, "engine_off")
    assert len(rows_on) == 8 * 5 + 3 + 3  # the retried request is not stored twice
    assert rows_on == rows_off
    sessions = "SELECT session_id, llm_calls, cost_usd, errors FROM {}.session_list ORDER BY session_id"
    assert client.query(sessions.format("engine_on")).result_rows == client.query(sessions.format("engine_off")).result_rows
