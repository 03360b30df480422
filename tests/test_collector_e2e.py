"""The whole collector into embedded ClickHouse: in process, and as a ``kill -9``-ed subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sessionlens import conventions
from sessionlens.collector.otlp_grpc import export_stub
from sessionlens.storage import connect
from collector_setup import (
    CONFIG,
    free_port,
    grpc_port,
    load_request,
    start_collector,
    start_pipeline,
    terminate_through_a_worker_thread,
    wait_for,
)


def test_sdk_spans_reach_otel_traces_and_session_list(chdb_url, database, tmp_path):
    pipeline = start_pipeline(chdb_url, database, tmp_path / "spool")
    try:
        port = grpc_port(pipeline)
        provider = TracerProvider(resource=Resource.create({"service.name": "e2e-app"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True))
        )
        tracer = provider.get_tracer("e2e")
        for turn in range(3):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attributes({
                    conventions.OPERATION: "chat",
                    conventions.SESSION_ID: "conv-42",
                    conventions.REQUEST_MODEL: "gpt-4o",
                    conventions.INPUT_TOKENS: 100 + turn,
                    conventions.OUTPUT_TOKENS: 10,
                })
        provider.shutdown()
    finally:
        pipeline.shutdown()  # drains the spool into ClickHouse
    client = connect(chdb_url, database=database)
    rows = client.query(
        "SELECT SpanName, ServiceName, SpanAttributes['gen_ai.usage.input_tokens'] FROM otel_traces ORDER BY 3"
    ).result_rows
    assert rows == [("chat gpt-4o", "e2e-app", str(100 + turn)) for turn in range(3)]
    sessions = client.query("SELECT session_id, llm_calls, input_tokens FROM session_list").result_rows
    assert sessions == [("conv-42", 3, 303)]


# --- a subprocess collector killed mid-load ---------------------------------------------


def test_kill_9_mid_load_loses_no_acknowledged_span(tmp_path):
    port = free_port()
    config = tmp_path / "collector.yaml"
    url = f"chdb://{tmp_path / 'ch'}"
    config.write_text(CONFIG.format(port=port, url=url, database="otel", spool=tmp_path / "spool"))
    process = start_collector(config, tmp_path / "first.log")

    acked: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    next_id = iter(range(0, 10**9, 50))

    def load() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = export_stub(channel)
            while not stop.is_set():
                with lock:
                    first = next(next_id)
                try:
                    response = export(load_request(first, 50), timeout=5)
                except grpc.RpcError:
                    continue  # not acknowledged: the client may drop or retry it
                assert response.partial_success.rejected_spans == 0
                with lock:
                    acked.update(range(first, first + 50))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acked) >= 2000, what="acknowledged spans")
    process.send_signal(signal.SIGKILL)
    process.wait()
    stop.set()
    for thread in threads:
        thread.join()
    assert acked

    log_path = tmp_path / "second.log"
    process = start_collector(config, log_path)  # recovers the spool
    # Stopped by a SIGTERM that reaches a worker thread, not the main one: it must stop
    # all the same (its main thread slept through such a signal, in an hour-long wait,
    # until collector/cli.py woke it every second).
    terminate_through_a_worker_thread(process)
    assert process.wait(timeout=90) == 0, log_path.read_text()

    query = textwrap.dedent(f"""
        import json
        from sessionlens.storage import connect
        client = connect({url!r}, database="otel")
        rows = client.query("SELECT SpanId, count() FROM otel_traces GROUP BY SpanId").result_rows
        print(json.dumps(rows))
    """)
    output = subprocess.run(
        [sys.executable, "-c", query], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    stored = {int(span_id, 16) - 1: count for span_id, count in json.loads(output.splitlines()[-1])}
    missing = acked - stored.keys()
    doubled = {i for i in acked if stored.get(i, 0) > 1}
    assert not missing, f"{len(missing)} acknowledged spans lost"
    assert not doubled, f"{len(doubled)} spans stored twice"
