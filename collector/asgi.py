"""Serve an ASGI app (Starlette) with uvicorn on a background thread of the collector.

Every HTTP endpoint of the collector (OTLP/HTTP, the sessions API and web UI) runs on this
one server stack::

    server = AsgiServer(app, "127.0.0.1:4319", name="sessions API")
    server.start()          # bound and accepting when it returns; port 0 → server.port
    ...
    server.stop()           # stop accepting, let requests in flight finish, then close

The listening socket is bound here, before uvicorn starts, so a port in use fails
``start()`` at once with :class:`ListenError` (uvicorn itself would ``sys.exit``), and
port 0 is resolved to the real port. Uvicorn runs in its own thread with its own event
loop; it installs no signal handlers there (the collector's main thread owns SIGINT/TERM)
and does not touch the process's logging configuration.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass

from sessionlens.collector.component import ListenError

log = logging.getLogger("sessionlens.collector")

_READY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What one server holds at most; past a limit a client gets 503 rather than a stall."""

    max_connections: int = 256
    """Open connections, idle keep-alive ones included (beyond: uvicorn answers 503)."""
    max_concurrent_requests: int = 64
    """Requests being handled at once (beyond: 503 with ``Retry-After``)."""
    backlog: int = 128
    """Connections the kernel queues before they are accepted."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open."""
    request_head_timeout: float = 10.0
    """Seconds a connection has to send a request's head (request line and headers), from
    its opening or the end of its previous response; then it is closed. Uvicorn alone never
    closes a connection that opened and sent nothing, nor one trickling its headers."""
    graceful_shutdown_timeout: float = 30.0
    """Seconds ``stop()`` waits for requests in flight before cancelling them."""
    max_header_bytes: int = 64 * 1024
    """Largest request head (request line and headers) read before the request is refused."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_concurrent_requests", "backlog", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.request_head_timeout <= 0:
            raise ValueError(f"request_head_timeout must be more than 0 seconds, not {self.request_head_timeout}")
        for name in ("keep_alive_timeout", "graceful_shutdown_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more seconds, not {getattr(self, name)}")


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:4319`` for IPv6; an empty host means 127.0.0.1) → (host, port)."""
    host, sep, port = endpoint.strip().rpartition(":")
    if not sep:
        raise ValueError(f"endpoint {endpoint!r} is not host:port (e.g. 127.0.0.1:4319)")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"endpoint {endpoint!r} has no port number (e.g. 127.0.0.1:4319)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"endpoint {endpoint!r}: port must be 0..65535")
    return host.strip("[]") or "127.0.0.1", number


class _RequestLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in the app; more get 503 + Retry-After.

    Counted on the event loop thread only, so a plain integer needs no lock.
    """

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            body = b'{"error": "too many concurrent requests; retry after the Retry-After delay"}'
            await send({
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                ],
            })
            await send({"type": "http.response.body", "body": body})
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def _h11_protocol(head_timeout: float):
    """Uvicorn's h11 protocol (strict HTTP/1.1 parsing: a bad Content-Length or chunk size is
    a 400, never a guess) with a deadline for each request head."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _armed_for: object = None

        def _arm_head_deadline(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._armed_for = self.cycle  # a new request head replaces the cycle
            self._head_timer = self.loop.call_later(head_timeout, self._head_deadline)

        def _head_deadline(self) -> None:
            self._head_timer = None
            idle = self.cycle is None or self.cycle.response_complete
            if self.cycle is self._armed_for and idle and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

    return _Protocol


def _uvicorn_server(ready: threading.Event):
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            ready.set()

    return _Server


class AsgiServer:
    """One ASGI app served by uvicorn on a background thread (see the module docstring)."""

    def __init__(self, app, endpoint: str, *, name: str, limits: Limits | None = None) -> None:
        self.app = app
        self.endpoint = endpoint
        self.name = name
        self.limits = limits or Limits()
        self.host, self.port = parse_endpoint(endpoint)
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (the real port when 0 was asked)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def describe(self) -> str:
        return f"{self.name} {self.url.removeprefix('http://')}"

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(self.limits.backlog)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise ListenError(f"{self.name} cannot listen on {self.endpoint}: {reason}") from None
        sock.setblocking(False)
        return sock

    def start(self) -> None:
        """Bind, start serving, and return once the server accepts connections.

        Raises :class:`ListenError` if the endpoint cannot be bound or the server fails
        to start.
        """
        import uvicorn

        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        limits = self.limits
        config = uvicorn.Config(
            _RequestLimit(self.app, limits.max_concurrent_requests),
            lifespan="off",
            http=_h11_protocol(limits.request_head_timeout),
            ws="none",
            log_config=None,  # leave the process's logging alone
            log_level=logging.WARNING,
            access_log=False,
            proxy_headers=False,  # nothing in front of us sets X-Forwarded-* we could trust
            server_header=False,
            limit_concurrency=limits.max_connections,
            backlog=limits.backlog,
            timeout_keep_alive=limits.keep_alive_timeout,
            timeout_graceful_shutdown=limits.graceful_shutdown_timeout,
            h11_max_incomplete_event_size=limits.max_header_bytes,
        )
        ready = threading.Event()
        self._server = _uvicorn_server(ready)(config)
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name=f"asgi-{self.name}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_READY_TIMEOUT_S) or self._failure is not None:
            reason = self._failure or f"not ready after {_READY_TIMEOUT_S:.0f} s"
            self.stop()
            raise ListenError(f"{self.name} on {self.endpoint} did not start: {reason}")

    def _serve(self, ready: threading.Event) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit from uvicorn's startup included
            self._failure = exc
            log.exception("%s stopped unexpectedly", self.name)
        finally:
            ready.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop accepting connections, close idle ones, let requests in flight finish
        (up to ``graceful_shutdown_timeout``, then they are cancelled). Idempotent."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(self.limits.graceful_shutdown_timeout + 2.0)
            if thread.is_alive():
                server.force_exit = True
                thread.join(2.0)
                if thread.is_alive():
                    log.warning("%s did not stop in time", self.name)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
