"""``otlp`` receiver: OTLP/gRPC and OTLP/HTTP in front of the pipeline.

Configured like the OpenTelemetry Collector's otlp receiver::

    receivers:
      otlp:
        protocols:
          grpc: {endpoint: 127.0.0.1:4317, auth: {authenticator: bearertokenauth}}
          http: {endpoint: 127.0.0.1:4318}

The transports parse and answer; this module holds what both share: authentication and
handing the decoded spans to the pipeline, which returns only once they are durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions
from sessionlens.collector import otlp
from sessionlens.collector.component import Host

TYPE = "otlp"

MIB = 1024 * 1024


@dataclass
class AuthConfig:
    authenticator: str = ""
    """Id of the extension that authenticates requests (``bearertokenauth``)."""


@dataclass
class GrpcConfig:
    endpoint: str = "127.0.0.1:4317"
    max_recv_msg_size_mib: int = 64
    max_concurrent_requests: int = 64
    """Requests handled at once (each waits for its batch to be stored)."""
    auth: AuthConfig | None = None


@dataclass
class HttpConfig:
    endpoint: str = "127.0.0.1:4318"
    max_request_body_size: int = 64 * MIB
    """Bytes, after decompression."""
    auth: AuthConfig | None = None


@dataclass
class Protocols:
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None


@dataclass
class Config:
    protocols: Protocols = field(default_factory=Protocols)

    def __post_init__(self) -> None:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ValueError("enable protocols.grpc and/or protocols.http")


class Exporting:
    """What a transport calls: authenticate a request, then export its spans."""

    def __init__(self, consume, authenticator) -> None:
        self._consume = consume
        self._authenticator = authenticator

    def authenticate(self, authorization: str | None) -> str | None:
        """The caller's project (None without auth); raises ``auth.Unauthenticated``."""
        if self._authenticator is None:
            return None
        return self._authenticator.project(authorization)

    def export(self, request: ExportTraceServiceRequest, project: str | None) -> otlp.Decoded:
        """Decode, then block until the valid spans are durable (or raise ExportUnavailable).

        Spans the pipeline rejected on the way are counted in the result's partial success.
        """
        decoded = otlp.decode(request, {conventions.PROJECT: project} if project else None)
        if decoded.spans:
            self._consume(decoded.spans)
            decoded.collect_rejected()
        return decoded


class OtlpReceiver:
    """Runs the configured transports; ``start`` binds them, ``shutdown`` drains them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._servers: list = []

    def _exporting(self, host: Host, auth: AuthConfig | None, consume) -> Exporting:
        if auth is None or not auth.authenticator:
            return Exporting(consume, None)
        extension = getattr(host, "extension", lambda _id: None)(auth.authenticator)
        if extension is None:
            raise ValueError(
                f"receivers.otlp: authenticator {auth.authenticator!r} is not an enabled "
                "extension (define it under extensions and list it in service.extensions)"
            )
        return Exporting(consume, extension)

    def start(self, host: Host, consume) -> None:
        from sessionlens.collector import otlp_grpc, otlp_http  # only the transports in use

        grpc_config, http_config = self.config.protocols.grpc, self.config.protocols.http
        try:
            if grpc_config is not None:
                exporting = self._exporting(host, grpc_config.auth, consume)
                self._listen(otlp_grpc.GrpcServer(grpc_config, exporting))
            if http_config is not None:
                exporting = self._exporting(host, http_config.auth, consume)
                self._listen(otlp_http.HttpServer(http_config, exporting))
        except BaseException:
            self.shutdown()
            raise

    def _listen(self, server) -> None:
        server.start()
        self._servers.append(server)

    def endpoints(self) -> list[str]:
        return [server.describe() for server in self._servers]

    def shutdown(self) -> None:
        """Stop accepting requests and wait for those in flight."""
        while self._servers:
            self._servers.pop().stop()


def create(config: Config, host: Host | None = None) -> OtlpReceiver:
    return OtlpReceiver(config)
