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


# --- a third party's processor, by its declaration --------------------------------------


@pytest.fixture
def watching_processor(monkeypatch):
    """Processor ``watch``, a third party's module registered by config in the factory shape
    of ``collector/component.py``: it records which form each batch reached it in, and
    declares column support as its config says (``columns``); ``fail_on_columns`` makes its
    ``process_columns`` raise."""
    import dataclasses
    import sys
    import types

    from sessionlens.collector import config as config_module
    from sessionlens.collector.component import Capabilities
    from sessionlens.collector.processorhelper import FunctionProcessor

    seen: list[tuple[str, int]] = []

    @dataclasses.dataclass
    class Config:
        columns: bool = True
        fail_on_columns: bool = False

    def create(config, settings, next_consumer):
        def process(spans):
            seen.append(("spans", len(spans)))

        def process_columns(columns):
            seen.append(("columns", len(columns)))
            if config.fail_on_columns:
                raise ValueError("a bug on the engine path")

        return FunctionProcessor(settings, next_consumer, process,
                                 process_columns=process_columns if config.columns else None)

    module = types.ModuleType("sessionlens_test_watch")
    module.TYPE, module.Config, module.create = "watch", Config, create
    module.capabilities = lambda config: Capabilities(columns=config.columns)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(config_module.REGISTRY["processors"], "watch", module.__name__)
    return seen


@pytest.mark.parametrize(("processors", "watch", "engine_path", "seen", "exported"), [
    ("batch, normalize, watch", "{}", True, {"columns"}, "columns"),
    # watch declares no column support
    ("batch, normalize, watch", "{columns: false}", False, {"spans"}, "spans"),
    # decoded after the leading gathering processors
    ("batch, batch/2, watch", "{}", True, {"columns"}, "columns"),
    # a gathering processor after one that does not
    ("normalize, batch, watch", "{}", False, {"spans"}, "spans"),
    # a processor failing on columns: their spans take the span path, through it too
    ("batch, normalize, watch", "{fail_on_columns: true}", True, {"columns", "spans"}, "spans"),
])
def test_the_pipeline_follows_what_processors_declare(
    chdb_url, recording_exporter, watching_processor, processors, watch, engine_path, seen, exported,
):
    """A third party's processor, registered by config, runs in a real pipeline; a processor
    declaring no column support, or gathering after one that does not gather, sends every
    request down the span path."""
    from sessionlens.collector.config import parse
    from sessionlens.collector.pipeline import Pipeline
    from sessionlens.schema import ingest

    # The engine path's decode stage on the test session's store; rows go to the recorder.
    recording_exporter.engine_client = lambda: storage.connect(chdb_url, **ingest.SETTINGS)
    pipeline = Pipeline(parse(f"""
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}
processors:
  batch: {{timeout: 20ms}}
  batch/2: {{timeout: 20ms}}
  normalize:
  watch: {watch}
exporters:
  recording:
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [{processors}], exporters: [recording]}}
"""))
    pipeline.start()
    try:
        assert pipeline.host.engine_path is engine_path
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port(pipeline)}") as channel:
            export = export_stub(channel)
            for trace in range(1, 4):
                assert export(_request(trace, 5), timeout=30).partial_success.rejected_spans == 0
    finally:
        pipeline.shutdown()
    assert {form for form, _ in watching_processor} == seen
    for form in seen:
        assert sum(n for f, n in watching_processor if f == form) == 15, form
    # What reached the exporter, in the form the processor passed on.
    assert (sum(recording_exporter.columns), len(recording_exporter.spans)) == (
        (15, 0) if exported == "columns" else (0, 15))
