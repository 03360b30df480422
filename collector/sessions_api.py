"""``sessions_api`` extension: the sessions JSON API and web UI, served by the collector.

Configured under ``extensions`` and listed in ``service.extensions``::

    extensions:
      sessions_api:
        endpoint: 127.0.0.1:4319

It reads the collector's own storage (``host.storage_client()``): with embedded chDB the
store belongs to this process, so this is the way in while the collector runs. Reads go
through :mod:`sessionlens.schema.queries` on a few clients of their own (a chDB client
serializes its calls; the exporter's is never used here), on worker threads, so the event
loop keeps answering while a query runs.

Auth: when the ``bearertokenauth`` extension is enabled (or the one ``auth.authenticator``
names), every ``/v1/*`` request and every page needs a token — ``Authorization: Bearer``
on the API, a cookie set by the sign-in form in a browser — and sees only its project;
``/healthz`` never needs one.
"""

from __future__ import annotations

import logging
import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sessionlens.collector import asgi
from sessionlens.collector.component import Host
from sessionlens.durations import Duration

log = logging.getLogger("sessionlens.collector")

TYPE = "sessions_api"
DEFAULT_AUTHENTICATOR = "bearertokenauth"
TOKEN_COOKIE = "sessionlens_token"


@dataclass
class AuthConfig:
    authenticator: str = DEFAULT_AUTHENTICATOR
    """Id of the extension whose tokens the API accepts (used whenever it is enabled)."""


@dataclass
class Config:
    endpoint: str = "127.0.0.1:4319"
    auth: AuthConfig | None = None
    readers: int = 3
    """ClickHouse clients for reads: how many queries run at once."""
    max_concurrent_requests: int = 64
    """Requests being answered at once, event streams included (beyond: 503)."""
    max_connections: int = 256
    max_subscribers: int = 32
    """Open ``/v1/events`` streams at most."""
    events_interval: Duration = Duration(1.0)
    """How often changed sessions are read for the event stream."""
    ui: bool = True
    """Serve the web UI at ``/`` (the API alone when false)."""

    def __post_init__(self) -> None:
        for name in ("readers", "max_concurrent_requests", "max_connections", "max_subscribers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_subscribers >= self.max_concurrent_requests:
            raise ValueError("max_subscribers must be below max_concurrent_requests, "
                             "so event streams cannot take every request slot")
        if self.events_interval <= 0:
            raise ValueError("events_interval must be more than 0")


class StorageNotReady(Exception):
    """The collector's storage is not open (yet): answer 503."""


class Readers:
    """A fixed pool of clickhouse-connect clients on the collector's storage, made lazily
    (the exporter opens storage after the extensions start)."""

    def __init__(self, host: Host, size: int) -> None:
        self._host = host
        self._size = size
        self._made = 0
        self._idle: queue.Queue = queue.Queue()
        self._lock = threading.Lock()

    @property
    def database(self) -> str:
        return self._host.database or "otel"

    @contextmanager
    def client(self):
        """A client for the duration of one read (waits while all are in use)."""
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = None
            with self._lock:
                if self._made < self._size:
                    client = self._host.storage_client()
                    if client is None:
                        raise StorageNotReady("the collector's storage is not open yet") from None
                    self._made += 1
            if client is None:
                client = self._idle.get()
        try:
            yield client
        finally:
            self._idle.put(client)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
            except Exception:
                log.debug("closing a reader client failed", exc_info=True)


class SessionsApi:
    """The running extension: the Starlette app on the shared ASGI server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server: asgi.AsgiServer | None = None
        self.readers: Readers | None = None
        self.events = None
        self._host: Host | None = None

    def authenticator(self):
        """The enabled token extension, or None when the API is open (no tokens)."""
        auth = self.config.auth or AuthConfig()
        return self._host.extension(auth.authenticator)

    def project(self, authorization: str | None, cookie: str | None) -> str | None:
        """The caller's project (None: every project, the API has no tokens).

        Raises :class:`~sessionlens.collector.auth.Unauthenticated` when tokens are configured and none is valid.
        """
        authenticator = self.authenticator()
        if authenticator is None:
            return None
        if not authorization and cookie:
            authorization = f"Bearer {cookie}"
        return authenticator.project(authorization)

    def read(self, function, *args: Any, **kwargs: Any) -> Any:
        """Run a read-layer function with a pooled client (on a worker thread)."""
        with self.readers.client() as client:
            return function(client, *args, database=self.readers.database, **kwargs)

    def start(self, host: Host) -> None:
        from sessionlens.collector import session_events, sessions_app
        from sessionlens.schema import queries

        self._host = host
        self.readers = Readers(host, self.config.readers)
        self.events = session_events.SessionEvents(
            lambda keys: self.read(queries.sessions_by_key, keys),
            interval=self.config.events_interval,
            max_subscribers=self.config.max_subscribers,
        )
        host.on_exported(self.events.exported)
        self.events.start()
        limits = asgi.Limits(
            max_connections=self.config.max_connections,
            max_concurrent_requests=self.config.max_concurrent_requests,
            graceful_shutdown_timeout=10.0,
        )
        self.server = asgi.AsgiServer(sessions_app.build(self), self.config.endpoint,
                                      name="sessions API", limits=limits)
        try:
            self.server.start()
        except BaseException:
            self.events.stop()
            raise
        if self.config.ui:
            log.info("sessions UI: %s/", self.server.url)
        log.info("sessions API: %s/v1/sessions", self.server.url)

    def endpoints(self) -> list[str]:
        return [self.server.describe()] if self.server is not None else []

    def shutdown(self) -> None:
        """End the event streams, stop the server (requests in flight finish), close clients."""
        if self.events is not None:
            self.events.stop()
        if self.server is not None:
            self.server.stop()
        if self.readers is not None:
            self.readers.close()


def create(config: Config, host: Host | None = None) -> SessionsApi:
    return SessionsApi(config)
