"""The collector as the end-to-end tests run it: the repository's pipeline on a test store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions

from sessionlens.collector import auth, sessions_api
from sessionlens.collector.config import ComponentSpec, parse
from sessionlens.collector.otlp_http import HttpServer
from sessionlens.collector.otlp_receiver import AuthConfig, HttpConfig
from sessionlens.collector.pipeline import Pipeline

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{port}"}}
processors:
  batch: {{timeout: 20ms}}
  normalize:
  autosession:
  cost:
exporters:
  clickhouse:
    endpoint: "{url}"
    database: {database}
    timeout: 60s
    insert_interval: 20ms
    spool: {{directory: "{spool}"}}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, normalize, autosession, cost]
      exporters: [clickhouse]
"""
"""Format with port (0: any free one), url (chdb:///path), database and spool (a directory)."""


def start_pipeline(url: str, database: str, spool: Path, *, http: bool = False,
                   api: bool = False, tokens: dict[str, str] | None = None,
                   engine_path: bool = False) -> Pipeline:
    """A started in-process collector listening for OTLP/gRPC on a free loopback port.

    With ``http``, it also serves OTLP/HTTP on another free loopback port (see ``http_port``);
    with ``api``, the sessions API and UI on a third (see ``api_url``), requiring the
    ``tokens`` (token → project) when given; ``engine_path`` turns the exporter's on.
    """
    config = parse(CONFIG.format(port=0, url=url, database=database, spool=spool))
    config.exporter.config.engine_path = engine_path
    if http:
        config.receivers[0].config.protocols.http = HttpConfig(endpoint="127.0.0.1:0")
    if tokens:
        config.extensions.append(ComponentSpec(
            "bearertokenauth", "extensions", auth, auth.Config(tokens=tokens)))
        config.receivers[0].config.protocols.grpc.auth = AuthConfig("bearertokenauth")
    if api:
        config.extensions.append(ComponentSpec(
            "sessions_api", "extensions", sessions_api,
            sessions_api.Config(endpoint="127.0.0.1:0", events_interval=0.1)))
    pipeline = Pipeline(config)
    pipeline.start()
    return pipeline


def grpc_port(pipeline: Pipeline) -> int:
    return pipeline.receivers[0]._servers[0].port


def api_url(pipeline: Pipeline) -> str:
    """``http://127.0.0.1:port`` of the sessions API of a pipeline started with ``api=True``."""
    return pipeline.host.extension("sessions_api").server.url


def http_port(pipeline: Pipeline) -> int:
    """The OTLP/HTTP port of a pipeline started with ``http=True``."""
    return next(s.port for s in pipeline.receivers[0]._servers if isinstance(s, HttpServer))


# --- the collector as a process of its own ----------------------------------------------


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_collector(config_path, log_path) -> subprocess.Popen:
    """``sessionlens collector --config config_path`` with its output in ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sessionlens", "collector", "--config", str(config_path)],
            stdout=log, stderr=log,
        )


def start_collector(config_path, log_path) -> subprocess.Popen:
    """A collector process, once it says it is listening."""
    process = launch_collector(config_path, log_path)
    wait_for(lambda: "listening" in log_path.read_text() or process.poll() is not None,
             timeout=60, what="collector start")
    assert process.poll() is None, log_path.read_text()
    return process


def terminate_through_a_worker_thread(process: subprocess.Popen) -> None:
    """SIGTERM ``process`` as the kernel may deliver it: to one of its threads other than
    the main one (any thread not blocking a signal may take a process's signal)."""
    import ctypes

    for tid in sorted(int(t) for t in os.listdir(f"/proc/{process.pid}/task")):
        status = Path(f"/proc/{process.pid}/task/{tid}/status").read_text()
        blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
        if tid != process.pid and not blocked & (1 << (signal.SIGTERM - 1)):
            break
    else:
        raise AssertionError("no thread but the main one takes SIGTERM")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(process.pid, tid, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def load_request(first_id: int, count: int) -> bytes:
    """An encoded request of ``count`` spans with span ids ``first_id + 1`` onwards."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = conventions.SERVICE_NAME, "load"
    scope = resource_spans.scope_spans.add()
    now = time.time_ns()
    for i in range(first_id, first_id + count):
        span = scope.spans.add()
        span.trace_id = (i // 10 + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
        kv = span.attributes.add()
        kv.key, kv.value.string_value = conventions.SESSION_ID, f"s{i % 7}"
    return request.SerializeToString()
