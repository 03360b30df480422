"""The OTLP receiver over real gRPC and HTTP on loopback, in front of a recording exporter."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from sessionlens.collector.component import ExportUnavailable
from sessionlens.collector.config import parse
from sessionlens.collector.otlp_grpc import export_stub
from sessionlens.collector.pipeline import Pipeline

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0", max_recv_msg_size_mib: 1}
      http: {endpoint: "127.0.0.1:0", max_request_body_size: 1048576}
exporters:
  recording:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [recording]}
"""


@pytest.fixture
def collector(recording_exporter):
    pipeline = Pipeline(parse(CONFIG))
    pipeline.start()
    (receiver,) = pipeline.receivers
    grpc_server, http_server = receiver._servers
    yield grpc_server.port, http_server.port, recording_exporter
    pipeline.shutdown()


def _grpc_call(port: int, body: bytes, **kwargs):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return export_stub(channel)(body, timeout=10, **kwargs)


def _request(spans: list[dict], resource: dict | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {"service.name": "svc"}).items():
        kv = resource_spans.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "test"
    for fields in spans:
        span = scope_spans.spans.add()
        span.trace_id = fields.get("trace_id", b"\x01" * 16)
        span.span_id = fields.get("span_id", b"\x02" * 8)
        span.parent_span_id = fields.get("parent_span_id", b"")
        span.name = fields.get("name", "op")
        span.start_time_unix_nano = fields.get("start", 1_000)
        span.end_time_unix_nano = fields.get("end", 2_000)
        for key, value in fields.get("attributes", {}).items():
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
    return request


def _sdk_spans(exporter) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("invoke_agent") as parent:
        parent.set_attribute("session.id", "s-1")
        with tracer.start_as_current_span("chat gpt-4o") as child:
            child.set_attributes(
                {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.cost": 0.25, "stream": True,
                 "gen_ai.response.finish_reasons": ["stop"]}
            )
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_official_exporters_deliver_spans_with_attributes(collector, transport):
    grpc_port, http_port, recorder = collector
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    _sdk_spans(exporter)
    by_name = {span.name: span for span in recorder.spans}
    assert set(by_name) == {"invoke_agent", "chat gpt-4o"}
    child = by_name["chat gpt-4o"]
    assert child.attributes == {
        "gen_ai.usage.input_tokens": "12",
        "gen_ai.usage.cost": "0.25",
        "stream": "true",
        "gen_ai.response.finish_reasons": '["stop"]',
    }
    assert child.resource["service.name"] == "chat-app"
    assert child.parent_span_id == by_name["invoke_agent"].span_id
    assert child.scope_name == "tests"
    assert by_name["invoke_agent"].attributes["session.id"] == "s-1"


def test_partial_success_rejects_invalid_spans_and_keeps_the_rest(collector):
    grpc_port, _, recorder = collector
    request = _request([
        {"name": "ok", "span_id": b"\x03" * 8},
        {"name": "short-trace", "trace_id": b"\x01" * 8},
        {"name": "zero-span", "span_id": bytes(8)},
        {"name": "bad-parent", "parent_span_id": b"\x01" * 4},
        {"name": "backwards", "start": 5_000, "end": 4_000},
        {"name": "ok-too", "span_id": b"\x04" * 8, "parent_span_id": b"\x03" * 8},
    ])
    response = _grpc_call(grpc_port, request.SerializeToString())
    assert response.partial_success.rejected_spans == 4
    message = response.partial_success.error_message
    assert "short-trace" in message and "trace_id must be 16 bytes" in message
    assert "(and 1 more)" in message
    assert [span.name for span in recorder.spans] == ["ok", "ok-too"]


def test_full_success_leaves_partial_success_unset(collector):
    grpc_port, _, _ = collector
    response = _grpc_call(grpc_port, _request([{}]).SerializeToString())
    assert not response.HasField("partial_success")


def test_malformed_request_is_invalid_argument(collector):
    grpc_port, _, recorder = collector
    with pytest.raises(grpc.RpcError) as raised:
        _grpc_call(grpc_port, b"\xff\xff\xff not protobuf")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert recorder.spans == []


def test_oversized_request_is_resource_exhausted(collector):
    grpc_port, _, recorder = collector
    big = _request([{"attributes": {"blob": "x" * (2 * 1024 * 1024)}}])
    with pytest.raises(grpc.RpcError) as raised:
        _grpc_call(grpc_port, big.SerializeToString())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert recorder.spans == []


def test_gzip_compressed_grpc_request_is_accepted(collector):
    grpc_port, _, recorder = collector
    body = _request([{"attributes": {"k": "v" * 1000}}]).SerializeToString()
    _grpc_call(grpc_port, body, compression=grpc.Compression.Gzip)
    assert recorder.spans[0].attributes["k"] == "v" * 1000


def test_invalid_utf8_is_replaced_and_the_span_kept(collector):
    grpc_port, _, recorder = collector
    body = _request([{"name": "op-MARK", "attributes": {"prompt": "caf-MARK", "ok": "fine"}}]).SerializeToString()
    body = body.replace(b"-MARK", b"\xff\xfe!!!")  # same length: framing intact
    response = _grpc_call(grpc_port, body)
    assert not response.HasField("partial_success")
    (span,) = recorder.spans
    assert span.name == "op\ufffd\ufffd!!!"
    assert span.attributes == {"prompt": "caf\ufffd\ufffd!!!", "ok": "fine"}


def test_storage_unavailable_is_unavailable_with_retry_info(collector):
    grpc_port, _, recorder = collector
    recorder.fail_with = ExportUnavailable("spool full", retry_after=7.5)
    with pytest.raises(grpc.RpcError) as raised:
        _grpc_call(grpc_port, _request([{}]).SerializeToString())
    error = raised.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.ToNanoseconds() == 7_500_000_000


def test_official_grpc_exporter_retries_on_unavailable(collector):
    """The SDK exporter treats UNAVAILABLE as retryable: once storage is back, it delivers."""
    grpc_port, _, recorder = collector
    recorder.fail_with = ExportUnavailable("storage restarting", retry_after=0.2)
    threading.Timer(0.5, lambda: setattr(recorder, "fail_with", None)).start()
    exporter = GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=10)
    finished = []

    class Capture(SpanExporter):
        def export(self, spans):
            finished.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Capture()))
    with provider.get_tracer("t").start_as_current_span("retried"):
        pass
    assert exporter.export(finished) == SpanExportResult.SUCCESS
    assert [span.name for span in recorder.spans] == ["retried"]


# --- OTLP/HTTP ------------------------------------------------------------------------


def _post(port: int, body: bytes, content_type: str, headers: dict | None = None, path="/v1/traces"):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": content_type, **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()  # case-insensitive
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_http_json_with_hex_ids_enum_ints_and_partial_success(collector):
    _, http_port, recorder = collector
    document = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
            "scopeSpans": [{
                "scope": {"name": "js"},
                "spans": [
                    {
                        "traceId": "5b8efff798038103d269b633813fc60c",
                        "spanId": "eee19b7ec3c1b174",
                        "parentSpanId": "eee19b7ec3c1b173",
                        "name": "chat",
                        "kind": 3,
                        "startTimeUnixNano": "1544712660000000000",
                        "endTimeUnixNano": "1544712661000000000",
                        "attributes": [
                            {"key": "n", "value": {"intValue": "42"}},
                            {"key": "d", "value": {"doubleValue": 2.5}},
                        ],
                        "status": {"code": 2, "message": "boom"},
                        "someFutureField": 1,
                    },
                    {"traceId": "zz", "spanId": "eee19b7ec3c1b175", "name": "bad-id"},
                ],
            }],
        }]
    }
    status, headers, body = _post(http_port, json.dumps(document).encode(), "application/json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    (span,) = recorder.spans
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.parent_span_id.hex() == "eee19b7ec3c1b173"
    assert (span.kind, span.status_code, span.status_message) == (3, 2, "boom")
    assert span.attributes == {"n": "42", "d": "2.5"}
    assert span.duration_ns == 1_000_000_000


def test_http_protobuf_gzip(collector):
    _, http_port, recorder = collector
    body = gzip.compress(_request([{"name": "zipped"}]).SerializeToString())
    status, headers, raw = _post(
        http_port, body, "application/x-protobuf", {"Content-Encoding": "gzip"}
    )
    assert status == 200
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")
    assert [span.name for span in recorder.spans] == ["zipped"]


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "path", "expected"),
    [
        (b"{not json", "application/json", {}, "/v1/traces", 400),
        (b"\xff\xff\xff", "application/x-protobuf", {}, "/v1/traces", 400),
        (b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, "/v1/traces", 400),
        (b"x" * (1024 * 1024 + 1), "application/x-protobuf", {}, "/v1/traces", 413),
        (gzip.compress(b"\0" * (2 * 1024 * 1024)), "application/x-protobuf",
         {"Content-Encoding": "gzip"}, "/v1/traces", 413),
        (b"", "text/plain", {}, "/v1/traces", 415),
        (b"", "application/x-protobuf", {}, "/v1/metrics", 404),
    ],
)
def test_http_errors(collector, body, content_type, headers, path, expected):
    _, http_port, recorder = collector
    status, response_headers, raw = _post(http_port, body, content_type, headers, path)
    assert status == expected
    if response_headers["Content-Type"] == "application/x-protobuf":
        assert status_pb2.Status.FromString(raw).message
    assert recorder.spans == []


def test_http_unavailable_has_retry_after(collector):
    _, http_port, recorder = collector
    recorder.fail_with = ExportUnavailable("ClickHouse unreachable", retry_after=2.2)
    status, headers, raw = _post(http_port, _request([{}]).SerializeToString(), "application/x-protobuf")
    assert status == 503
    assert headers["Retry-After"] == "3"
    assert "ClickHouse unreachable" in status_pb2.Status.FromString(raw).message


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_shutdown_answers_requests_in_flight(recording_exporter, transport):
    """Stopping waits for a request whose spans are still being stored, and acknowledges it."""
    entered, release = threading.Event(), threading.Event()
    store = recording_exporter.export

    def slow_export(spans):
        entered.set()
        release.wait(10)
        store(spans)

    recording_exporter.export = slow_export  # bound by the pipeline at start
    pipeline = Pipeline(parse(CONFIG))
    pipeline.start()
    grpc_server, http_server = pipeline.receivers[0]._servers
    body = _request([{"name": "in-flight"}]).SerializeToString()
    outcome = []
    if transport == "grpc":
        send = lambda: outcome.append(_grpc_call(grpc_server.port, body))  # noqa: E731
    else:
        send = lambda: outcome.append(_post(http_server.port, body, "application/x-protobuf")[0])  # noqa: E731
    client = threading.Thread(target=send)
    client.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=pipeline.shutdown)
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive()  # waiting for the request in flight
    release.set()
    stopper.join(10)
    client.join(10)
    assert [span.name for span in recording_exporter.spans] == ["in-flight"]
    assert outcome and (outcome[0] == 200 if transport == "http" else not outcome[0].HasField("partial_success"))


def _post_chunked(port: int, chunks: list[bytes], headers: dict | None = None):
    """A chunked POST, as Node's OTLP/HTTP exporters send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/v1/traces", body=iter(chunks), encode_chunked=True,
                       headers={"Content-Type": "application/x-protobuf", **(headers or {})})
    response = connection.getresponse()
    result = response.status, response.read()
    connection.close()
    return result


def test_http_chunked_body_with_gzip(collector):
    _, http_port, recorder = collector
    body = gzip.compress(_request([{"name": "chunked"}]).SerializeToString())
    status, _ = _post_chunked(http_port, [body[:10], body[10:]], {"Content-Encoding": "gzip"})
    assert status == 200
    assert [span.name for span in recorder.spans] == ["chunked"]


def test_http_chunked_body_too_large(collector):
    _, http_port, recorder = collector
    status, _ = _post_chunked(http_port, [b"x" * 600_000, b"x" * 600_000])
    assert status == 413
    assert recorder.spans == []
