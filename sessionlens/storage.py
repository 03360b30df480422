"""Turn a ClickHouse URL into a clickhouse-connect client.

``chdb:///abs/path`` (or ``chdb://relative/path``) opens the embedded chDB engine at that
path — the same SQL a server runs; ``http(s)://user:pass@host:8123/db`` reaches a server
or cluster. Everything sessionlens stores or reads goes through the client returned here:
the collector's exporter, ``sessionlens schema``, the read commands and the benches, which
is why it lives on the package's ground floor rather than inside one of them.
"""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

DEFAULT_URL = "chdb://data/clickhouse"
"""Embedded storage under ./data/clickhouse, relative to the working directory."""

_URL_HELP = (
    "use chdb:///absolute/path or chdb://relative/path for embedded storage, "
    "or http(s)://user:password@host:8123/database for a ClickHouse server"
)


class StorageError(Exception):
    """The storage URL is wrong, a driver is missing, or ClickHouse cannot be reached."""


class StoreInUseError(StorageError):
    """The embedded store is open in another process (chDB allows one process per path)."""


def store_in_use(path: str) -> bool:
    """Whether another process holds the embedded store at ``path`` open.

    The ClickHouse engine takes an exclusive ``flock`` on ``<path>/status`` while it runs,
    so this asks the same lock (and gives it back at once). Only meaningful before this
    process opens the store itself: its own lock would count too.
    """
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return False  # no status file: no engine has the store open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def embedded_path(url: str) -> str | None:
    """The filesystem path of a ``chdb://`` URL (absolute), or None for a server URL."""
    parts = urlsplit(url)
    if parts.scheme != "chdb":
        return None
    raw = unquote(parts.netloc + parts.path)
    if not raw or raw == "/":
        raise StorageError(f"ClickHouse URL {url!r} names no directory: {_URL_HELP}")
    return os.path.abspath(raw)


def connect(url: str | None = None, *, database: str | None = None, **settings: object) -> Client:
    """Open a clickhouse-connect client for ``url`` (default: embedded ``./data/clickhouse``).

    ``database`` overrides the one in the URL. ``settings`` are ClickHouse session settings.
    Raises :class:`StorageError` with a message that says what to fix.
    """
    url = url or DEFAULT_URL
    parts = urlsplit(url)
    try:
        import clickhouse_connect
    except ImportError as exc:  # the base install is application-side only
        raise StorageError(
            "ClickHouse access needs the collector extras: pip install 'sessionlens[collector]'"
        ) from exc

    if parts.scheme == "chdb":
        path = embedded_path(url)
        os.makedirs(path, exist_ok=True)
        try:
            import chdb  # noqa: F401  (clickhouse-connect imports it lazily; fail early and clearly)
        except ImportError as exc:
            raise StorageError(
                "embedded storage needs chDB: pip install 'sessionlens[collector]', "
                "or point --clickhouse at a server (http://host:8123)"
            ) from exc
        try:
            return clickhouse_connect.get_client(
                interface="chdb", path=path, database=database, settings=settings or None
            )
        except Exception as exc:
            # chDB reports a held lock only on stderr ("Cannot lock file …/status"); the
            # exception says BAD_ARGUMENTS. Name the real cause.
            if store_in_use(path):
                raise StoreInUseError(
                    f"the embedded ClickHouse store at {path} is open in another process "
                    "(a running sessionlens collector?); a chDB store is single-process"
                ) from exc
            raise StorageError(f"cannot open embedded ClickHouse at {path}: {exc}") from exc

    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise StorageError(f"ClickHouse URL names no host: {_URL_HELP}")
        try:
            port = parts.port
        except ValueError as exc:
            raise StorageError(f"ClickHouse URL has a bad port: {_URL_HELP}") from exc
        db = database or unquote(parts.path.strip("/")) or None
        try:
            return clickhouse_connect.get_client(
                interface=parts.scheme,
                host=parts.hostname,
                port=port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=db,
                settings=settings or None,
            )
        except Exception as exc:
            raise StorageError(
                f"cannot reach ClickHouse at {parts.scheme}://{parts.hostname}:{port or ''}: {exc}"
            ) from exc

    # The URL may hold a password: name only its scheme.
    raise StorageError(f"unsupported ClickHouse URL scheme {parts.scheme or '(none)'!r}: {_URL_HELP}")
