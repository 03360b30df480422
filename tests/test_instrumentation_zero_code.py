"""Zero-code: an unmodified app under the real ``opentelemetry-instrument`` exports its LLM spans over OTLP/gRPC."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from instr_fake_llm import FakeLLMServer
from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL

from sessionlens import conventions as c
from sessionlens.instrumentation.distro import SessionLensDistro

APP = """
import openai
client = openai.OpenAI(base_url="{url}/v1", api_key="k", max_retries=0)
reply = client.chat.completions.create(
    model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}], extra_headers={{"X-Session-ID": "zero-code"}}
)
print(reply.choices[0].message.content)
"""


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.received = threading.Event()

    def Export(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802 - gRPC method name
        self.requests.append(request)
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_endpoint() -> Iterator[tuple[str, _Receiver]]:
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", receiver
    server.stop(None)


def _value(any_value):  # type: ignore[no-untyped-def]
    return getattr(any_value, any_value.WhichOneof("value"))


def test_opentelemetry_instrument_exports_llm_spans(otlp_endpoint: tuple[str, _Receiver], tmp_path: Path) -> None:
    endpoint, receiver = otlp_endpoint
    with FakeLLMServer() as llm:
        app = tmp_path / "app.py"
        app.write_text(textwrap.dedent(APP.format(url=llm.url)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(OTEL_SERVICE_NAME="chat", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        launcher = Path(sys.executable).with_name("opentelemetry-instrument")
        done = subprocess.run(
            [str(launcher), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello there"
    assert receiver.received.wait(10)
    spans = {}
    for request in receiver.requests:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            assert resource[c.SERVICE_NAME] == "chat"
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.name] = (span, {a.key: _value(a.value) for a in span.attributes})
    llm, attrs = spans["chat gpt-4o"]
    assert attrs[c.SESSION_ID] == "zero-code" and attrs[c.INPUT_TOKENS] == 11
    http, _ = spans["POST"]  # opentelemetry-instrumentation-httpx, loaded by the launcher too
    assert http.parent_span_id == llm.span_id


def test_distro_defaults_never_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER, OTEL_EXPORTER_OTLP_PROTOCOL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(OTEL_METRICS_EXPORTER, "console")
    SessionLensDistro().configure()
    assert os.environ[OTEL_TRACES_EXPORTER] == "otlp" and os.environ[OTEL_EXPORTER_OTLP_PROTOCOL] == "grpc"
    assert os.environ[OTEL_METRICS_EXPORTER] == "console" and os.environ[OTEL_LOGS_EXPORTER] == "none"
