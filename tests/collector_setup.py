"""The collector as the end-to-end tests run it: the repository's pipeline on a test store."""

from __future__ import annotations

from pathlib import Path

from sessionlens.collector.config import parse
from sessionlens.collector.otlp_http import HttpServer
from sessionlens.collector.otlp_receiver import HttpConfig
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


def start_pipeline(url: str, database: str, spool: Path, *, http: bool = False) -> Pipeline:
    """A started in-process collector listening for OTLP/gRPC on a free loopback port.

    With ``http``, it also serves OTLP/HTTP on another free loopback port (see ``http_port``).
    """
    config = parse(CONFIG.format(port=0, url=url, database=database, spool=spool))
    if http:
        config.receivers[0].config.protocols.http = HttpConfig(endpoint="127.0.0.1:0")
    pipeline = Pipeline(config)
    pipeline.start()
    return pipeline


def grpc_port(pipeline: Pipeline) -> int:
    return pipeline.receivers[0]._servers[0].port


def http_port(pipeline: Pipeline) -> int:
    """The OTLP/HTTP port of a pipeline started with ``http=True``."""
    return next(s.port for s in pipeline.receivers[0]._servers if isinstance(s, HttpServer))
