"""bearertokenauth: tokens → projects on both transports, never echoed."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sessionlens import conventions
from sessionlens.collector.auth import BearerTokenAuth, Config, Unauthenticated, create
from sessionlens.collector.config import parse
from sessionlens.collector.otlp_grpc import export_stub
from sessionlens.collector.pipeline import Pipeline

SECRET_A = "tok-a-5f0c2d"
SECRET_B = "tok-b-99e1aa"

CONFIG = """
extensions:
  bearertokenauth:
    tokens: {{"{a}": team-a}}
    tokens_file: {file}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0", auth: {{authenticator: bearertokenauth}}}}
      http: {{endpoint: "127.0.0.1:0", auth: {{authenticator: bearertokenauth}}}}
exporters:
  recording:
service:
  extensions: [bearertokenauth]
  pipelines:
    traces: {{receivers: [otlp], exporters: [recording]}}
"""


@pytest.fixture
def collector(tmp_path, recording_exporter):
    tokens_file = tmp_path / "tokens.yaml"
    tokens_file.write_text(f"{SECRET_B}: team-b\n")
    pipeline = Pipeline(parse(CONFIG.format(a=SECRET_A, file=tokens_file)))
    pipeline.start()
    grpc_server, http_server = pipeline.receivers[0]._servers
    yield grpc_server.port, http_server.port, recording_exporter
    pipeline.shutdown()


def _request() -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = conventions.PROJECT, "spoofed"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "op"
    return request.SerializeToString()


def _grpc(port: int, metadata=()):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return export_stub(channel)(_request(), metadata=metadata, timeout=10)


def test_unit_constant_time_lookup_over_all_tokens():
    auth = BearerTokenAuth({"t1": "p1", "t2": "p2"})
    assert auth.project("Bearer t2") == "p2"
    assert auth.project("bearer  t1 ") == "p1"
    for header in (None, "", "Bearer", "Basic dDE6eA==", "Bearer t3", "t1"):
        with pytest.raises(Unauthenticated) as raised:
            auth.project(header)
        assert "t1" not in str(raised.value) and "t3" not in str(raised.value)


def test_no_tokens_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="no tokens"):
        create(Config())
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"- {SECRET_A}\n")
    with pytest.raises(ValueError) as raised:
        create(Config(tokens_file=str(bad)))
    assert SECRET_A not in str(raised.value)


def test_grpc_tokens_map_to_projects_overriding_the_client(collector):
    grpc_port, _, recorder = collector
    _grpc(grpc_port, (("authorization", f"Bearer {SECRET_A}"),))
    _grpc(grpc_port, (("authorization", f"Bearer {SECRET_B}"),))
    assert [s.resource[conventions.PROJECT] for s in recorder.spans] == ["team-a", "team-b"]


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong-token-123"),)])
def test_grpc_missing_or_wrong_token_is_unauthenticated(collector, metadata):
    grpc_port, _, recorder = collector
    with pytest.raises(grpc.RpcError) as raised:
        _grpc(grpc_port, metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong-token-123" not in raised.value.details()
    assert recorder.spans == []


def test_official_exporter_with_headers(collector):
    grpc_port, _, recorder = collector
    provider = TracerProvider(resource=Resource.create({"service.name": "a"}))
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{grpc_port}", insecure=True,
        headers={"authorization": f"Bearer {SECRET_B}"},
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("hello"):
        pass
    provider.shutdown()
    (span,) = recorder.spans
    assert span.resource[conventions.PROJECT] == "team-b"


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("nope-777", 401), (SECRET_A, 200)])
def test_http(collector, token, status):
    _, http_port, recorder = collector
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v1/traces", data=_request(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read()
        assert error.headers["WWW-Authenticate"] == "Bearer"
    assert code == status
    assert b"nope-777" not in body
    assert [s.resource[conventions.PROJECT] for s in recorder.spans] == (["team-a"] if token == SECRET_A else [])


def test_tokens_file_values_are_read_as_the_characters_written(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "# token: project\n0123: team-octal\n12:30: team-clock\nyes: team-bool\n"
        "'quoted': 0x1F\n1e3: null\n"
    )
    auth = create(Config(tokens_file=str(tokens)))
    assert auth.project("Bearer 0123") == "team-octal"
    assert auth.project("Bearer 12:30") == "team-clock"
    assert auth.project("Bearer yes") == "team-bool"
    assert auth.project("Bearer quoted") == "0x1F"
    assert auth.project("Bearer 1e3") == "null"
    for coerced in ("83", "750", "True", "1000.0"):
        with pytest.raises(Unauthenticated):
            auth.project(f"Bearer {coerced}")


def test_tokens_file_with_nested_values_says_what_it_must_hold(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("secret-token-1: {project: a}\n")
    with pytest.raises(ValueError, match="one 'token: project' line per token") as info:
        create(Config(tokens_file=str(tokens)))
    assert "secret-token-1" not in str(info.value)
