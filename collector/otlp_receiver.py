"""``otlp`` receiver: OTLP/gRPC and OTLP/HTTP in front of the pipeline.

Configured like the OpenTelemetry Collector's otlp receiver::

    receivers:
      otlp:
        protocols:
          grpc: {endpoint: 127.0.0.1:4317, auth: {authenticator: bearertokenauth}}
          http: {endpoint: 127.0.0.1:4318}

The transports receive and answer; this module holds what both share: authentication and
handing each request to the next consumer the receiver was created with — as its bytes for
the engine path's decode stage (``collector/engine.py``), else decoded here, on the
request's own thread — returning only once its spans are durable.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from sessionlens.collector import engine, otlp
from sessionlens.collector.component import Consumer, Host, Settings
from sessionlens.collector.pdata import Batch, Request
from sessionlens.durations import Duration

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
    """The Collector's confighttp server settings, and the bounds of sessionlens's server."""

    endpoint: str = "127.0.0.1:4318"
    max_request_body_size: int = 64 * MIB
    """Bytes, after decompression."""
    auth: AuthConfig | None = None
    read_header_timeout: Duration = Duration(10.0)
    """How long a connection may take to send a request's head (a silent or trickling
    client is disconnected)."""
    read_timeout: Duration = Duration(60.0)
    """How long a request's body may take to arrive (then 408)."""
    idle_timeout: Duration = Duration(30.0)
    """How long an idle keep-alive connection stays open."""
    max_concurrent_requests: int = 64
    """Requests handled at once (beyond: 503 with Retry-After)."""
    max_connections: int = 1024
    """Open connections, idle ones included (beyond: 503)."""
    backlog: int = 1024
    """Connections the kernel queues before they are accepted."""


@dataclass
class Protocols:
    grpc: GrpcConfig | None = None
    http: HttpConfig | None = None


@dataclass
class Config:
    protocols: Protocols = field(default_factory=Protocols)
    max_bytes_in_flight_mib: int = 32
    """Request bytes (as received, and again after gunzip) all transports hold at once
    while decoding and storing; beyond it requests are refused with UNAVAILABLE / 503 and
    a retry delay. Decoding takes several times a request's size: this bounds memory."""

    def __post_init__(self) -> None:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ValueError("enable protocols.grpc and/or protocols.http")
        if self.max_bytes_in_flight_mib < 1:
            raise ValueError(f"max_bytes_in_flight_mib must be at least 1, got {self.max_bytes_in_flight_mib}")


class InFlight:
    """The bytes of requests being handled, across transports, and their bound.

    A request larger than the whole bound is still taken when nothing else is held, so
    every request the size limits allow can get through.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[_Hold]:
        """A request's share: ``take`` more as it arrives; all given back at the end."""
        share = _Hold(self)
        try:
            yield share
        finally:
            with self._lock:
                self.used -= share.held

    def refusal(self) -> str:
        return (
            f"the collector is handling {self.used} bytes of requests, its bound "
            "(receivers.otlp.max_bytes_in_flight_mib); retry later"
        )


class _Hold:
    __slots__ = ("_owner", "held")

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self.held = 0

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes; False (nothing counted) when the bound is reached."""
        owner = self._owner
        with owner._lock:
            if owner.used + size > owner.limit and owner.used > self.held:
                return False
            owner.used += size
            self.held += size
            return True

    def refusal(self) -> str:
        return self._owner.refusal()


class Exporting:
    """What a transport calls: authenticate a request, then export its spans."""

    def __init__(self, consumer: Consumer, authenticator, in_flight: InFlight, engine_path: bool = False) -> None:
        self._consume = consumer.consume
        self._engine_path = engine_path
        self._authenticator = authenticator
        self.in_flight = in_flight

    def authenticate(self, authorization: str | None) -> str | None:
        """The caller's project (None without auth); raises ``auth.Unauthenticated``."""
        if self._authenticator is None:
            return None
        return self._authenticator.project(authorization)

    def export(self, body: bytes, project: str | None) -> otlp.Decoded:
        """Block until the valid spans of the protobuf request ``body`` are durable (or raise
        ExportUnavailable; ``otlp.MalformedRequest`` when it is no request).

        Spans rejected on the way are counted in the result's partial success.
        """
        request = Request(body, project)
        if self._engine_path:
            self._consume(Batch(requests=[request]))
        else:  # decoded here, so concurrent requests decode on their own threads
            spans = engine.decode_in_python(request)
            if spans:
                self._consume(Batch(spans))
        if request.malformed:
            raise otlp.MalformedRequest(request.malformed)
        decoded = request.decoded
        if decoded is None:  # the engine path: every span stored
            return otlp.Decoded([])
        decoded.collect_rejected()
        return decoded


class OtlpReceiver:
    """Runs the configured transports; ``start`` binds them, ``shutdown`` drains them."""

    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        self.config = config
        self._next = next_consumer
        self._servers: list = []
        self._in_flight = InFlight(config.max_bytes_in_flight_mib * MIB)

    def _exporting(self, host: Host, auth: AuthConfig | None) -> Exporting:
        engine_path = host.engine_path
        if auth is None or not auth.authenticator:
            return Exporting(self._next, None, self._in_flight, engine_path)
        extension = host.extension(auth.authenticator)
        if extension is None:
            raise ValueError(
                f"receivers.otlp: authenticator {auth.authenticator!r} is not an enabled "
                "extension (define it under extensions and list it in service.extensions)"
            )
        return Exporting(self._next, extension, self._in_flight, engine_path)

    def start(self, host: Host) -> None:
        from sessionlens.collector import otlp_grpc, otlp_http  # only the transports in use

        grpc_config, http_config = self.config.protocols.grpc, self.config.protocols.http
        try:
            if grpc_config is not None:
                exporting = self._exporting(host, grpc_config.auth)
                self._listen(otlp_grpc.GrpcServer(grpc_config, exporting))
            if http_config is not None:
                exporting = self._exporting(host, http_config.auth)
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


def create(config: Config, settings: Settings, next_consumer: Consumer) -> OtlpReceiver:
    """A receiver handing each request to ``next_consumer``."""
    return OtlpReceiver(config, next_consumer)
