"""The standard OpenTelemetry JS trace exporters send to the collector unchanged.

``tests/node/send_spans.mjs`` exports three spans (a root, a failing child and a sibling)
with the official Node exporters over OTLP/gRPC, OTLP/HTTP JSON and OTLP/HTTP protobuf;
the spans must land in ``otel_traces`` once each, as the clickhouseexporter would write them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from collector_setup import grpc_port, http_port, start_pipeline

from sessionlens import conventions
from sessionlens.storage import connect

NODE_DIR = Path(__file__).parent / "node"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules").exists(),
    reason="Node.js is not installed, or tests/node has no node_modules (`make install` runs npm ci there)",
)


@pytest.fixture
def collector(chdb_url, database, tmp_path):
    pipeline = start_pipeline(chdb_url, database, tmp_path / "spool", http=True)
    yield pipeline
    pipeline.shutdown()


def _send(transport: str, port: int, marker: str) -> None:
    result = subprocess.run(
        ["node", str(NODE_DIR / "send_spans.mjs"), transport, f"http://127.0.0.1:{port}", marker],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"the Node {transport} exporter failed:\n{result.stderr}"


def _spans(client, service: str, expected: int) -> dict[str, dict]:
    """The service's rows by span name, once ``expected`` of them are visible."""
    sql = (
        "SELECT SpanName, TraceId, SpanId, ParentSpanId, SpanKind, ServiceName, ScopeName,"
        " ScopeVersion, SpanAttributes, StatusCode, StatusMessage, SessionId,"
        " Events.Name AS EventNames, Events.Attributes AS EventAttributes"
        " FROM otel_traces WHERE ServiceName = {service:String} ORDER BY SpanName"
    )
    deadline = time.monotonic() + 30
    while True:
        result = client.query(sql, parameters={"service": service})
        if len(result.result_rows) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    rows = [dict(zip(result.column_names, row)) for row in result.result_rows]
    names = [row["SpanName"] for row in rows]
    assert len(names) == len(set(names)), f"a span arrived more than once: {names}"
    return {row["SpanName"]: row for row in rows}


@pytest.mark.parametrize("transport", ["grpc", "http-json", "http-proto"])
def test_node_exporter_spans_arrive_unchanged(transport, collector, chdb_url, database):
    port = grpc_port(collector) if transport == "grpc" else http_port(collector)
    _send(transport, port, transport)

    client = connect(chdb_url, database=database)
    try:
        spans = _spans(client, f"node-{transport}", expected=3)
    finally:
        client.close()
    assert sorted(spans) == [f"{name}-{transport}" for name in ("child", "root", "sibling")]
    root, child, sibling = (spans[f"{name}-{transport}"] for name in ("root", "child", "sibling"))

    # One trace, the root's children pointing at it (ids as lowercase hex, as the exporter writes).
    assert len({root["TraceId"], child["TraceId"], sibling["TraceId"]}) == 1
    assert len(root["TraceId"]) == 32 and root["TraceId"] == root["TraceId"].lower()
    assert root["ParentSpanId"] == ""
    assert child["ParentSpanId"] == sibling["ParentSpanId"] == root["SpanId"]
    assert len({root["SpanId"], child["SpanId"], sibling["SpanId"]}) == 3

    for span in (root, child, sibling):
        assert span["ServiceName"] == f"node-{transport}"
        assert (span["ScopeName"], span["ScopeVersion"]) == ("sessionlens-node-test", "1.0.0")
        assert span["SessionId"] == f"session-{transport}"
        assert span["SpanAttributes"][conventions.SESSION_ID] == f"session-{transport}"
    assert [root["SpanKind"], child["SpanKind"], sibling["SpanKind"]] == ["Server", "Client", "Internal"]

    # Typed attributes rendered as the clickhouseexporter renders them.
    attributes = root["SpanAttributes"]
    assert attributes["test.string"] == "hello"
    assert attributes["test.int"] == "42"
    assert attributes["test.double"] == "0.25"
    assert attributes["test.bool"] == "true"
    assert attributes["test.strings"] == '["a","b"]'

    assert (child["StatusCode"], child["StatusMessage"]) == ("Error", "upstream failed")
    assert root["StatusCode"] == sibling["StatusCode"] == "Unset"

    assert list(root["EventNames"]) == ["request.received"]
    assert dict(root["EventAttributes"][0]) == {"event.size": "3"}
    assert list(child["EventNames"]) == ["retry"]
    assert dict(child["EventAttributes"][0]) == {"retry.attempt": "1", "retry.reason": "timeout"}
    assert list(sibling["EventNames"]) == []
