"""The shared ASGI server: uvicorn on a background thread, bound, bounded, stopped gracefully."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sessionlens.collector.asgi import AsgiServer, Limits, parse_endpoint
from sessionlens.collector.component import ListenError


def _app(release: threading.Event | None = None, entered: threading.Event | None = None) -> Starlette:
    async def hello(request):
        return PlainTextResponse("hello")

    async def slow(request):
        import anyio

        if entered is not None:
            entered.set()
        while release is not None and not release.is_set():
            await anyio.sleep(0.01)
        return PlainTextResponse("done")

    return Starlette(routes=[Route("/", hello), Route("/slow", slow)])


@pytest.fixture
def server():
    servers: list[AsgiServer] = []

    def make(app=None, endpoint="127.0.0.1:0", **limits) -> AsgiServer:
        s = AsgiServer(app or _app(), endpoint, name="test API", limits=Limits(**limits))
        s.start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_port_zero_binds_a_real_port_and_serves_at_once(server):
    s = server()
    assert s.port != 0
    assert s.url == f"http://127.0.0.1:{s.port}"
    assert s.describe() == f"test API 127.0.0.1:{s.port}"
    assert httpx.get(s.url + "/").text == "hello"


def test_a_port_in_use_fails_start_with_a_clear_message(server):
    taken = server()
    other = AsgiServer(_app(), f"127.0.0.1:{taken.port}", name="sessions API")
    with pytest.raises(ListenError, match=rf"sessions API cannot listen on 127.0.0.1:{taken.port}"):
        other.start()
    assert httpx.get(taken.url + "/").text == "hello"  # the first one is unharmed


@pytest.mark.parametrize(
    "endpoint, message",
    [("localhost", "not host:port"), ("127.0.0.1:http", "no port number"), ("127.0.0.1:70000", "0..65535")],
)
def test_bad_endpoints_are_refused(endpoint, message):
    with pytest.raises(ValueError, match=message):
        parse_endpoint(endpoint)


def test_endpoint_forms():
    assert parse_endpoint(":4319") == ("127.0.0.1", 4319)
    assert parse_endpoint("[::1]:0") == ("::1", 0)


def test_ipv6_loopback(server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        s = server(endpoint="[::1]:0")
    except ListenError:
        pytest.skip("::1 is not configured here")
    assert s.url.startswith("http://[::1]:")
    assert httpx.get(s.url + "/").text == "hello"


def test_requests_beyond_the_limit_get_503_with_retry_after(server):
    release, entered = threading.Event(), threading.Event()
    s = server(_app(release, entered), max_concurrent_requests=1)
    first: list[httpx.Response] = []
    t = threading.Thread(target=lambda: first.append(httpx.get(s.url + "/slow", timeout=10)))
    t.start()
    assert entered.wait(5)
    refused = httpx.get(s.url + "/")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "too many concurrent requests" in refused.json()["error"]
    release.set()
    t.join(10)
    assert first[0].text == "done"
    assert httpx.get(s.url + "/").text == "hello"  # the slot is free again


def test_stop_lets_a_request_in_flight_finish_then_refuses_connections(server):
    release, entered = threading.Event(), threading.Event()
    s = server(_app(release, entered))
    answers: list[httpx.Response] = []
    t = threading.Thread(target=lambda: answers.append(httpx.get(s.url + "/slow", timeout=10)))
    t.start()
    assert entered.wait(5)
    url = s.url
    stopper = threading.Thread(target=s.stop)
    stopper.start()
    time.sleep(0.3)
    assert stopper.is_alive()  # waiting for the request in flight
    release.set()
    stopper.join(10)
    t.join(10)
    assert answers[0].status_code == 200 and answers[0].text == "done"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=2)
    s.stop()  # idempotent


def test_idle_keep_alive_connections_are_closed(server):
    s = server(keep_alive_timeout=0.2)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"hello" not in data:
            data += conn.recv(4096)
        conn.settimeout(3)
        started = time.monotonic()
        assert conn.recv(4096) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 2.5


def test_a_request_head_that_never_ends_is_cut_off(server):
    s = server(max_header_bytes=1024)
    reply = b""
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):  # header lines that keep coming, the head never terminated
                conn.sendall(b"x-filler: " + b"a" * 200 + b"\r\n")
                time.sleep(0.005)
            while chunk := conn.recv(4096):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):  # closed on us mid-send: refused too
            pass
    # (a server that kept waiting would let recv time out: TimeoutError fails the test)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400")
    assert httpx.get(s.url + "/").text == "hello"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_concurrent_requests must be at least 1"):
        Limits(max_concurrent_requests=0)
    with pytest.raises(ValueError, match="keep_alive_timeout must be 0 or more"):
        Limits(keep_alive_timeout=-1)


def test_a_connection_that_sends_no_whole_head_in_time_is_closed(server):
    s = server(request_head_timeout=0.5)
    silent = socket.create_connection(("127.0.0.1", s.port))
    trickling = socket.create_connection(("127.0.0.1", s.port))
    silent.settimeout(5)
    trickling.settimeout(5)
    started = time.monotonic()
    trickling.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.3)
    trickling.sendall(b"Host: x\r\n")  # data, but never the end of the head
    assert silent.recv(1) == b"" and trickling.recv(1) == b""
    assert time.monotonic() - started < 3
    silent.close()
    trickling.close()
    # A request whose handling takes longer than the head deadline is not cut.
    release, entered = threading.Event(), threading.Event()
    slow = server(_app(release, entered), request_head_timeout=0.3)
    threading.Timer(1.0, release.set).start()
    assert httpx.get(slow.url + "/slow", timeout=10).text == "done"
    # Keep-alive: the next request on the same connection gets a fresh deadline.
    with httpx.Client(base_url=s.url) as client:
        assert client.get("/").text == "hello"
        time.sleep(0.2)
        assert client.get("/").text == "hello"
