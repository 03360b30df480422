"""Pipeline wiring and the group-commit batch processor."""

from __future__ import annotations

import dataclasses
import sys
import threading
import types

import pytest

from sessionlens.collector import config as config_module
from sessionlens.collector.component import Capabilities, ExportUnavailable, Settings
from sessionlens.collector.config import parse
from sessionlens.collector.pdata import Batch, Span
from sessionlens.collector.pipeline import Pipeline
from sessionlens.collector.processorhelper import FunctionProcessor, isolated
from sessionlens.processors import batch as batch_processor
from sessionlens.processors.batch import Config as BatchConfig
from sessionlens.processors.batch import GroupCommit


def _spans(n: int, name: str = "op") -> Batch:
    return Batch([
        Span(b"\x01" * 16, i.to_bytes(8, "big"), b"", name, 1, 0, 1, {}, {}) for i in range(1, n + 1)
    ])


class Downstream:
    """A next consumer that records its batches; can be held (``gate``) or told to fail."""

    def __init__(self) -> None:
        self.calls: list[Batch] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.error: Exception | None = None

    def consume(self, spans: Batch) -> None:
        self.entered.set()
        self.gate.wait()
        if self.error:
            raise self.error
        self.calls.append(spans)


def _batch(downstream: Downstream, **settings) -> tuple[GroupCommit, object]:
    batch = batch_processor.create(BatchConfig(**settings), Settings("batch", None), downstream)
    batch.start(None)
    return batch, batch.consume


def _concurrently(consume, requests: list[Batch]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(requests)

    def send(i: int) -> None:
        try:
            consume(requests[i])
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcomes


def test_concurrent_requests_share_one_downstream_call():
    downstream = Downstream()
    batch, consume = _batch(downstream, send_batch_size=1000, timeout=30, flush_when_idle=False)
    outcomes = _concurrently(consume, [_spans(100, f"r{i}") for i in range(10)])
    batch.shutdown()
    assert outcomes == [None] * 10
    assert [len(call) for call in downstream.calls] == [1000]


def test_requests_return_only_after_their_batch_went_downstream():
    downstream = Downstream()
    downstream.gate.clear()
    batch, consume = _batch(downstream, send_batch_size=10, timeout=0.01)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (consume(_spans(3)), done.set()))
    thread.start()
    assert not done.wait(0.3)  # downstream is blocked: no acknowledgement yet
    downstream.gate.set()
    assert done.wait(5)
    batch.shutdown()
    assert [len(call) for call in downstream.calls] == [3]


def test_group_commit_gathers_while_downstream_is_busy_and_never_waits_when_idle():
    downstream = Downstream()
    batch, consume = _batch(downstream, send_batch_size=8192, timeout=60)
    consume(_spans(2))  # idle: sent at once, not after the 60 s timeout
    downstream.gate.clear()
    downstream.entered.clear()
    first = threading.Thread(target=consume, args=(_spans(1),))
    first.start()
    assert downstream.entered.wait(5)  # being "stored": the next requests gather meanwhile
    gathered = threading.Thread(target=_concurrently, args=(consume, [_spans(3) for _ in range(5)]))
    gathered.start()
    for _ in range(500):
        if batch._queued == 15:
            break
        threading.Event().wait(0.01)
    downstream.gate.set()
    first.join(5)
    gathered.join(5)
    batch.shutdown()
    assert [len(call) for call in downstream.calls] == [2, 1, 15]


def test_timeout_sends_a_partial_batch():
    downstream = Downstream()
    batch, consume = _batch(downstream, send_batch_size=8192, timeout=0.05, flush_when_idle=False)
    consume(_spans(5))  # would block forever if only size triggered a batch
    batch.shutdown()
    assert [len(call) for call in downstream.calls] == [5]


def test_every_waiting_request_gets_the_downstream_error():
    downstream = Downstream()
    downstream.error = ExportUnavailable("spool full", retry_after=3)
    batch, consume = _batch(downstream, send_batch_size=40, timeout=30, flush_when_idle=False)
    outcomes = _concurrently(consume, [_spans(10) for _ in range(4)])
    batch.shutdown()
    assert all(isinstance(o, ExportUnavailable) and o.retry_after == 3 for o in outcomes)


def test_overload_is_refused_with_export_unavailable():
    downstream = Downstream()
    downstream.gate.clear()
    batch, consume = _batch(downstream, send_batch_size=10, max_queued_spans=20, timeout=0.01)
    stuck = threading.Thread(target=consume, args=(_spans(10),))
    stuck.start()
    assert downstream.entered.wait(5)  # the flusher took it and is blocked downstream
    queued = threading.Thread(target=consume, args=(_spans(15),))
    queued.start()
    for _ in range(500):
        if batch._queued == 15:
            break
        threading.Event().wait(0.01)
    with pytest.raises(ExportUnavailable, match="overloaded"):
        consume(_spans(10))
    downstream.gate.set()
    stuck.join(5)
    queued.join(5)
    batch.shutdown()
    assert sum(len(call) for call in downstream.calls) == 25


def test_send_batch_max_size_splits_large_requests():
    downstream = Downstream()
    batch, consume = _batch(downstream, send_batch_size=10, send_batch_max_size=10, timeout=0.01)
    consume(_spans(25))
    batch.shutdown()
    assert [len(call) for call in downstream.calls] == [10, 10, 5]


def test_shutdown_flushes_what_is_queued_and_then_refuses():
    downstream = Downstream()
    batch, consume = _batch(downstream, send_batch_size=1000, timeout=60, flush_when_idle=False)
    waiter = threading.Thread(target=consume, args=(_spans(7),))
    waiter.start()
    while not batch._queued:
        threading.Event().wait(0.005)
    batch.shutdown()
    waiter.join(5)
    assert [len(call) for call in downstream.calls] == [7]
    with pytest.raises(ExportUnavailable, match="shutting down"):
        consume(_spans(1))


# --- the pipeline built from a config -------------------------------------------------


def _register(monkeypatch, kind: str, module: types.ModuleType) -> None:
    """Make ``module`` the component type ``module.TYPE`` of configs, as a third party's."""
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(config_module.REGISTRY[kind], module.TYPE, module.__name__)


@pytest.fixture
def tagging_processors(monkeypatch):
    """Processors ``tag/<name>`` — a third party's module with the factory shape of
    ``collector/component.py`` — that append their id to each span's ``trail`` attribute."""
    events = []

    @dataclasses.dataclass
    class Config:
        fail: bool = False

    class Tag:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self, host) -> None:
            events.append(("started", self.name, host.storage_client(), host.database))

        def shutdown(self) -> None:
            events.append(("stopped", self.name))

        def process(self, spans):
            for span in spans:
                span.attributes["trail"] = span.attributes.get("trail", "") + self.name + ";"
            return spans

    def create(config, settings, next_consumer):
        tag = Tag(settings.id)
        events.append(("created", settings.id))
        return FunctionProcessor(settings, next_consumer, tag.process, start=tag.start, shutdown=tag.shutdown)

    module = types.ModuleType("sessionlens_test_tag")
    module.TYPE, module.Config, module.create = "tag", Config, create
    module.capabilities = lambda config: Capabilities()  # spans only
    _register(monkeypatch, "processors", module)
    return events


PIPELINE = """
receivers:
  otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}
processors:
  batch: {timeout: 10ms}
  tag/first:
  tag/second:
exporters:
  recording:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [tag/first, batch, tag/second], exporters: [recording]}
"""


def test_processors_run_in_configured_order_and_get_the_host(recording_exporter, tagging_processors):
    events = tagging_processors
    pipeline = Pipeline(parse(PIPELINE))
    pipeline.start()
    try:
        # Created and started from the exporter backwards: each after its next consumer.
        assert [event[:2] for event in events] == [
            ("created", "tag/second"), ("started", "tag/second"), ("created", "tag/first"), ("started", "tag/first"),
        ]
        # The recording exporter has no storage.
        assert events[1][2:] == (None, None)
        pipeline.consume(_spans(3))
    finally:
        pipeline.shutdown()
    assert [span.attributes["trail"] for span in recording_exporter.spans] == ["tag/first;tag/second;"] * 3
    assert pipeline.receivers == []
    # Shut down in data-flow order, so each flushes into a downstream still running.
    assert events[4:] == [("stopped", "tag/first"), ("stopped", "tag/second")]


def test_failed_start_stops_what_started(recording_exporter, tagging_processors):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        text = PIPELINE.replace("127.0.0.1:0", f"127.0.0.1:{busy.getsockname()[1]}")
        pipeline = Pipeline(parse(text))
        with pytest.raises(Exception, match="address in use|Address already in use"):
            pipeline.start()
    with pytest.raises(RuntimeError, match="not started"):
        pipeline.consume(_spans(1))


# --- one bad span never costs another -----------------------------------------------------


@pytest.fixture
def choking_processor(monkeypatch):
    """Processor ``choke``: raises for any batch holding a span named ``poison``, like a
    processor meeting a value it cannot handle."""

    @dataclasses.dataclass
    class Config:
        pass

    class Choke:
        def process(self, spans):
            for span in spans:
                if span.name == "poison":
                    raise OverflowError("int too large to convert to float")
                span.attributes["choked"] = "no"
            return spans

    module = types.ModuleType("sessionlens_test_choke")
    module.TYPE, module.Config = "choke", Config
    module.capabilities = lambda config: Capabilities()
    module.create = lambda config, settings, next_consumer: FunctionProcessor(settings, next_consumer, Choke().process)
    _register(monkeypatch, "processors", module)


def test_a_span_a_processor_fails_on_is_rejected_alone(recording_exporter, choking_processor):
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from sessionlens.collector.otlp_grpc import export_stub

    text = """
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}
processors:
  batch: {timeout: 50ms, flush_when_idle: false, send_batch_size: 100000, max_queued_spans: 100000}
  choke:
exporters:
  recording:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch, choke], exporters: [recording]}
"""
    pipeline = Pipeline(parse(text))
    pipeline.start()

    def request(n: int, names: list[str]) -> bytes:
        req = ExportTraceServiceRequest()
        spans = req.resource_spans.add().scope_spans.add().spans
        for i, name in enumerate(names):
            span = spans.add()
            span.trace_id, span.span_id = (n + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")
            span.name, span.start_time_unix_nano, span.end_time_unix_nano = name, 1, 2
        return req.SerializeToString()

    bodies = [request(n, ["ok"] * 5) for n in range(20)] + [request(20, ["ok", "poison", "ok"])]
    responses: list = [None] * len(bodies)
    try:
        port = pipeline.receivers[0]._servers[0].port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = export_stub(channel)

            def send(i: int) -> None:
                responses[i] = export(bodies[i], timeout=10)

            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
    finally:
        pipeline.shutdown()
    assert len(recording_exporter.batches) < len(bodies)  # the poison shared a batch with others
    assert [r.partial_success.rejected_spans for r in responses] == [0] * 20 + [1]
    assert "processor choke failed on it (OverflowError" in responses[-1].partial_success.error_message
    stored = recording_exporter.spans
    assert len(stored) == 102 and {s.name for s in stored} == {"ok"}
    assert all(s.attributes["choked"] == "no" for s in stored)


def test_isolation_passes_storage_trouble_on_and_isolates_the_exporter_too():
    spans = _spans(4).spans
    spans[2].name = "poison"
    exported: list[Span] = []

    def export(batch):
        if any(s.name == "poison" for s in batch):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        exported.extend(batch)

    assert isolated(export, "exporter clickhouse", spans) == [spans[0], spans[1], spans[3]]
    assert exported == [spans[0], spans[1], spans[3]]
    assert spans[2].rejected.startswith("exporter clickhouse failed on it (UnicodeEncodeError")

    def unavailable(batch):
        raise ExportUnavailable("spool full")

    with pytest.raises(ExportUnavailable):  # not the spans' fault: the client retries them all
        isolated(unavailable, "exporter clickhouse", _spans(2).spans)
