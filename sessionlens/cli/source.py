"""Where the CLI reads sessions: the collector's sessions API, or ClickHouse directly.

Both answer with the sessions API's JSON (the same dicts, times as RFC 3339 strings), so
rendering and ``--json`` never depend on the source. Every failure a user can hit becomes a
:class:`CliError` whose message says what to do.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

DEFAULT_API = "http://127.0.0.1:4319"
STREAM_SILENCE_S = 60.0
START_HINT = "start the collector with 'make run' (or 'sessionlens collector'), or point --api at it"


class CliError(Exception):
    """A failure with a message for the user; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class NotFound(CliError):
    """The API answered 404."""


def _origin(url: str) -> str:
    """The URL without credentials, path or query: safe to print."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class ApiSource:
    """The sessions API of a running collector (``/v1/*``), over HTTP."""

    def __init__(self, base_url: str = DEFAULT_API, token: str | None = None, timeout: float = 30) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"--api {base_url!r} is not an http(s) URL: use e.g. {DEFAULT_API}", 2)
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, path: str, params: Mapping[str, Any] | None, stream: bool = False):
        query = urllib.parse.urlencode(
            [(k, v) for k, v in (params or {}).items() if v is not None], doseq=True
        )
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        where = _origin(self.base)
        try:
            # a stream sends a keep-alive every 15 s: a minute of silence means it is gone
            return urllib.request.urlopen(request, timeout=STREAM_SILENCE_S if stream else self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                raise CliError(f"nothing is listening at {where}: {START_HINT}") from None
            if isinstance(reason, socket.gaierror):
                raise CliError(f"cannot resolve the host of {where}: check --api") from None
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise CliError(f"{where} did not answer within {self.timeout:g}s") from None
            raise CliError(f"cannot reach {where}: {reason}") from None
        except (TimeoutError, socket.timeout):
            raise CliError(f"{where} did not answer within {self.timeout:g}s") from None
        except ConnectionError as exc:
            raise CliError(f"the connection to {where} failed ({exc.__class__.__name__}): {START_HINT}") from None

    def _http_error(self, exc: urllib.error.HTTPError, where: str) -> CliError:
        try:
            body = json.loads(exc.read() or b"{}")
            detail = body.get("error") if isinstance(body, dict) else None
        except (ValueError, OSError):
            detail = None
        if exc.code == 401:
            if self.token:
                return CliError(f"the sessions API at {where} refused the token (401): "
                                "check --token or SESSIONLENS_TOKEN")
            return CliError(f"the sessions API at {where} needs a token (401): "
                            "pass --token or set SESSIONLENS_TOKEN")
        if exc.code == 404:
            return NotFound(str(detail or "not found"))
        if exc.code == 400:
            return CliError(f"the sessions API refused the request: {detail or exc.reason}", 2)
        if exc.code == 503:
            return CliError(f"the sessions API at {where} is overloaded or its storage is "
                            f"unavailable (503): try again shortly ({detail or exc.reason})")
        return CliError(f"the sessions API at {where} answered {exc.code}: {detail or exc.reason}")

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON of ``GET path``."""
        with self._request(path, params) as response:
            data = response.read()
        try:
            return json.loads(data)
        except ValueError:
            raise CliError(f"{_origin(self.base)}{path} did not answer JSON: is --api a sessionlens collector?") from None

    def sessions(self, params: Mapping[str, Any]) -> dict:
        return self.get("/v1/sessions", params)

    def session(self, session_id: str, params: Mapping[str, Any]) -> dict:
        return self.get(f"/v1/sessions/{urllib.parse.quote(session_id, safe='')}", params)

    def vitals(self, params: Mapping[str, Any]) -> dict:
        return self.get("/v1/vitals", params)

    def users(self, params: Mapping[str, Any]) -> dict:
        return self.get("/v1/users", params)

    def events(self, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """The session rows of ``/v1/events`` as they arrive (Server-Sent Events)."""
        response = self._request("/v1/events", params, stream=True)
        where = _origin(self.base)
        try:
            with response:
                for data in sse_data(response):
                    try:
                        yield json.loads(data)
                    except ValueError:
                        continue  # not a row: nothing to show
        except (TimeoutError, socket.timeout):
            raise CliError(f"the event stream from {where} went silent for "
                           f"{STREAM_SILENCE_S:g}s: is the collector still running?") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise CliError(f"the event stream from {where} broke ({exc.__class__.__name__}): "
                           "is the collector still running?") from None
        raise CliError(f"the collector at {where} closed the event stream (stopped?)")


def sse_data(lines) -> Iterator[str]:
    """The data of each event in a Server-Sent Events byte stream (the WHATWG rules:
    ``data:`` lines joined by newlines, dispatched on a blank line; comments ignored)."""
    buffer: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            buffer.append(value[1:] if value.startswith(" ") else value)
    # an event not ended by a blank line before the stream closed is dropped, as in browsers
