"""Soak: good clients beside hostile ones and a full disk, through a real collector process.

Starts ``sessionlens collector`` (OTLP/gRPC and OTLP/HTTP on loopback, the repository's
pipeline, embedded chDB in a temp directory, the spool on a tmpfs of its own) and runs two
phases of ``--seconds`` each:

1. good clients only (gRPC and HTTP, 100 realistic LLM spans a request, each retried until
   acknowledged): throughput and ack latency p99;
2. the same good clients beside hostile ones — huge requests (15 MiB, HTTP and gRPC at
   once), slow ones (connections that trickle their headers or body), malformed ones
   (garbage protobuf, bad and deeply nested JSON, ``Content-Length: -1``, bad chunk sizes)
   and poison spans (401-digit token counts, NaN and negative costs, times past 2262) —
   and a full-disk episode (a ballast file fills the spool's filesystem for a few seconds,
   then is deleted).

Then it stops the collector (SIGTERM: the spool drains), reads ``otel_traces`` and prints
acknowledged vs stored spans (they must be equal), the refused requests by reason, the
collector's peak RSS (VmHWM) and the good clients' figures per phase. Loopback only, bounded
in time; needs root for the tmpfs mount. Run: ``.venv/bin/python bench/soak.py``.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions as c
from sessionlens.collector.otlp_grpc import export_stub

CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}", max_recv_msg_size_mib: 64}}
      http: {{endpoint: "127.0.0.1:{http}", read_header_timeout: 5s, read_timeout: 10s}}
processors:
  batch: {{send_batch_max_size: 16384, timeout: 100ms}}
  normalize:
  autosession:
  cost:
exporters:
  clickhouse:
    endpoint: "chdb://{store}"
    database: otel
    timeout: 300s
    spool: {{directory: "{spool}", max_size_mib: 4096}}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, normalize, autosession, cost]
      exporters: [clickhouse]
"""

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ledger:
    """What the clients saw: acknowledged span ids, refusals by reason, good-client latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.refused: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.good_spans = 0

    def ack(self, ids, rejected: set[int] = frozenset()) -> None:
        with self.lock:
            self.acked.update(i for i in ids if i not in rejected)

    def refuse(self, reason: str) -> None:
        with self.lock:
            self.refused[reason] += 1


def _reason(text: str) -> str:
    text = text.lower()
    for needle, name in (("filesystem is full", "disk full"), ("bytes of requests", "bytes in flight"),
                         ("requests already", "concurrent requests"), ("too many concurrent", "concurrent requests"),
                         ("overloaded", "queue full"), ("spool", "spool full")):
        if needle in text:
            return name
    return text[:40]


def _span(request_spans, n: int, attributes: dict, start: int, name: str = "chat gpt-4o"):
    span = request_spans.add()
    span.trace_id, span.span_id = (n // 4 + 1).to_bytes(16, "big"), (n + 1).to_bytes(8, "big")
    span.name, span.kind = name, 3
    span.start_time_unix_nano, span.end_time_unix_nano = start, start + 800_000_000
    for key, value in attributes.items():
        kv = span.attributes.add()
        kv.key = key
        if isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value
    return span


def good_request(first: int, count: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    kv = resource.resource.attributes.add()
    kv.key, kv.value.string_value = c.SERVICE_NAME, "soak-chatbot"
    spans = resource.scope_spans.add().spans
    now = time.time_ns()
    for n in range(first, first + count):
        _span(spans, n, {
            c.OPERATION: "chat", c.PROVIDER: "openai", c.REQUEST_MODEL: "gpt-4o",
            c.RESPONSE_MODEL: "gpt-4o-2024-08-06", c.INPUT_TOKENS: 1200 + n % 50, c.OUTPUT_TOKENS: 80,
            c.USER_ID: f"user-{n % 97}", "gen_ai.response.finish_reasons": "stop",
        }, now)
    return request.SerializeToString()


# --- clients -----------------------------------------------------------------------------


def good_grpc(ledger: Ledger, port: int, ids, stop: threading.Event) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = export_stub(channel)
        while not stop.is_set():
            first = next(ids)
            body = good_request(first, 100)
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    response = export(body, timeout=30)
                except grpc.RpcError as exc:
                    ledger.refuse(f"good gRPC {exc.code().name}: {_reason(exc.details() or '')}")
                    time.sleep(0.2)
                    continue
                with ledger.lock:
                    ledger.latencies.append(time.perf_counter() - started)
                    ledger.good_spans += 100 - response.partial_success.rejected_spans
                ledger.ack(range(first, first + 100))
                break


def good_http(ledger: Ledger, port: int, ids, stop: threading.Event) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        first = next(ids)
        body = good_request(first, 100)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
                response = connection.getresponse()
                raw = response.read()
            except OSError as exc:
                ledger.refuse(f"good HTTP connection: {type(exc).__name__}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                time.sleep(0.2)
                continue
            if response.status != 200:
                ledger.refuse(f"good HTTP {response.status}: {_reason(raw.decode('latin-1'))}")
                time.sleep(0.2)
                continue
            with ledger.lock:
                ledger.latencies.append(time.perf_counter() - started)
                ledger.good_spans += 100
            ledger.ack(range(first, first + 100))
            break
    connection.close()


def _post(port: int, body: bytes, headers=PROTOBUF) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/v1/traces", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def huge(ledger: Ledger, grpc_port: int, http_port: int, ids, stop: threading.Event, use_grpc: bool) -> None:
    while not stop.is_set():
        first = next(ids)
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        now, n = time.time_ns(), first
        while request.ByteSize() < 15 << 20:
            _span(spans, n, {f"attr{j}": "x" * 200 for j in range(4)}, now, "huge")
            n += 1
        body = request.SerializeToString()
        try:
            if use_grpc:
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}",
                                           options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
                    export_stub(channel)(body, timeout=60)
            else:
                status, raw = _post(http_port, body)
                if status != 200:
                    ledger.refuse(f"huge HTTP {status}: {_reason(raw.decode('latin-1'))}")
                    continue
        except grpc.RpcError as exc:
            ledger.refuse(f"huge gRPC {exc.code().name}: {_reason(exc.details() or '')}")
            continue
        except OSError as exc:
            ledger.refuse(f"huge HTTP connection: {type(exc).__name__}")
            continue
        ledger.ack(range(first, n))


def slow(ledger: Ledger, http_port: int, stop: threading.Event) -> None:
    """Connections that trickle their head, and one body that never completes."""
    while not stop.is_set():
        socks = [socket.create_connection(("127.0.0.1", http_port)) for _ in range(50)]
        for sock in socks:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\n")
        body_sock = socket.create_connection(("127.0.0.1", http_port))
        body_sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                          b"Content-Length: 100000\r\n\r\nabc")
        deadline = time.monotonic() + 12
        open_ = set(range(len(socks)))
        while open_ and time.monotonic() < deadline and not stop.is_set():
            for i in list(open_):
                try:
                    socks[i].sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.discard(i)
                    ledger.refuse("slow head: closed by the collector")
            time.sleep(0.5)
        body_sock.settimeout(1)
        try:
            answer = body_sock.recv(100)
            ledger.refuse(f"slow body: {answer[:12].decode('latin-1')}".strip())
        except OSError:
            pass
        for sock in [*socks, body_sock]:
            sock.close()


MALFORMED = [
    (b"\xff\xff\xff\xff", PROTOBUF),
    (b"{not json", {"Content-Type": "application/json"}),
    (b'{"resourceSpans": 5}', {"Content-Type": "application/json"}),
    (b'{"resourceSpans": [' * 20_000 + b"]}" * 20_000, {"Content-Type": "application/json"}),
    (b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}),
]


def malformed(ledger: Ledger, http_port: int, grpc_port: int, stop: threading.Event) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = export_stub(channel)
        while not stop.is_set():
            for body, headers in MALFORMED:
                try:
                    status, _ = _post(http_port, body, headers)
                    ledger.refuse(f"malformed HTTP {status}")
                except OSError as exc:
                    ledger.refuse(f"malformed HTTP connection: {type(exc).__name__}")
            for head in (b"Content-Length: -1\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\n-1\r\n"):
                with socket.create_connection(("127.0.0.1", http_port), timeout=10) as sock:
                    sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                                 + head + b"\0" * 1000)
                    try:
                        ledger.refuse(f"bad framing HTTP {sock.recv(12)[9:12].decode('latin-1')}")
                    except OSError as exc:
                        ledger.refuse(f"bad framing: {type(exc).__name__}")
            try:
                export(b"\xff\xff\xff\xff", timeout=10)
            except grpc.RpcError as exc:
                ledger.refuse(f"malformed gRPC {exc.code().name}")
            time.sleep(0.2)


POISONS = [
    {c.INPUT_TOKENS: "9" * 401},
    {"langfuse.observation.usage_details": '{"input": 1.7e308, "input_cached_tokens": 1e308}'},
    {c.COST: float("nan")},
    {c.COST: -1_000_000.0},
    {c.INPUT_TOKENS: str(2**63)},
    {"_start": 2**63},
]


def poison(ledger: Ledger, grpc_port: int, ids, stop: threading.Event) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = export_stub(channel)
        while not stop.is_set():
            for attributes in POISONS:
                first = next(ids)
                request = ExportTraceServiceRequest()
                spans = request.resource_spans.add().scope_spans.add().spans
                attributes = dict(attributes)
                start = attributes.pop("_start", time.time_ns())
                _span(spans, first, {c.OPERATION: "chat", c.REQUEST_MODEL: "gpt-4o", **attributes},
                      start, "poison")
                _span(spans, first + 1, {c.OPERATION: "chat"}, time.time_ns(), "beside the poison")
                try:
                    response = export(request.SerializeToString(), timeout=30)
                except grpc.RpcError as exc:
                    ledger.refuse(f"poison gRPC {exc.code().name}: {_reason(exc.details() or '')}")
                    continue
                rejected = response.partial_success.rejected_spans
                if rejected:
                    ledger.refuse("poison span rejected (partial success)")
                # Only the time past 2262 is rejected; the rest are stored without their bad number.
                ledger.ack([first, first + 1], {first} if rejected else set())
            time.sleep(0.2)


# --- the run -----------------------------------------------------------------------------


def counter(start: int, step: int):
    lock, value = threading.Lock(), [start]

    def next_id() -> int:
        with lock:
            value[0] += step
            return value[0] - step

    return iter(next_id, None)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fill_disk(directory: str, stop: threading.Event, seconds: float) -> None:
    """A ballast file takes every free byte of the spool's filesystem, then goes away."""
    path = os.path.join(directory, "ballast")
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    print(f"  full-disk episode: ballast {os.path.getsize(path) >> 20} MiB, spool filesystem full", flush=True)
    stop.wait(seconds)
    os.remove(path)
    print("  full-disk episode over: ballast deleted", flush=True)


def phase(name: str, args, grpc_port: int, http_port: int, ids, hostile: bool, spool_mount: str):
    ledger = Ledger()
    stop = threading.Event()
    threads = [threading.Thread(target=good_grpc, args=(ledger, grpc_port, ids, stop)) for _ in range(args.grpc_clients)]
    threads += [threading.Thread(target=good_http, args=(ledger, http_port, ids, stop)) for _ in range(args.http_clients)]
    if hostile:
        threads += [
            threading.Thread(target=huge, args=(ledger, grpc_port, http_port, ids, stop, False)),
            threading.Thread(target=huge, args=(ledger, grpc_port, http_port, ids, stop, True)),
            threading.Thread(target=slow, args=(ledger, http_port, stop)),
            threading.Thread(target=malformed, args=(ledger, http_port, grpc_port, stop)),
            threading.Thread(target=poison, args=(ledger, grpc_port, ids, stop)),
        ]
    started = time.monotonic()
    for t in threads:
        t.start()
    if hostile:
        time.sleep(args.seconds / 3)
        fill_disk(spool_mount, stop, min(5.0, args.seconds / 4))
    time.sleep(max(0.0, started + args.seconds - time.monotonic()))
    with ledger.lock:
        good, latencies, elapsed = ledger.good_spans, sorted(ledger.latencies), time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(90)
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    print(f"  {name}: good clients {good / elapsed:,.0f} spans/s acknowledged, ack p99 {p99:.0f} ms "
          f"({len(latencies)} requests)", flush=True)
    return ledger, good / elapsed, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase (default %(default)s)")
    parser.add_argument("--grpc-clients", type=int, default=3)
    parser.add_argument("--http-clients", type=int, default=2)
    parser.add_argument("--spool-mib", type=int, default=256, help="size of the spool's tmpfs")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="sessionlens-soak-")
    mount = os.path.join(work, "spool-fs")
    os.makedirs(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.spool_mib}m", "tmpfs", mount], check=True)
    grpc_port, http_port = free_port(), free_port()
    store = os.path.join(work, "ch")
    config = os.path.join(work, "collector.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(grpc=grpc_port, http=http_port, store=store, spool=os.path.join(mount, "spool")))
    log_path = os.path.join(work, "collector.log")
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "sessionlens", "collector", "--config", config],
                               stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while "listening" not in open(log_path).read():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the collector did not start:\n{open(log_path).read()}")
            time.sleep(0.2)
        print(f"soak: {args.seconds:g} s per phase, {args.grpc_clients} gRPC + {args.http_clients} HTTP good "
              f"clients, collector pid {process.pid} (loopback; the machine is shared)", flush=True)
        ids = counter(0, 100_000)
        quiet, quiet_rate, quiet_p99 = phase("good clients alone", args, grpc_port, http_port, ids, False, mount)
        mixed, mixed_rate, mixed_p99 = phase("with hostile clients and a full disk", args, grpc_port, http_port,
                                             ids, True, mount)
        peak = peak_rss_mib(process.pid)
        process.send_signal(signal.SIGTERM)
        drained = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
        subprocess.run(["umount", "-l", mount], check=False)

    from sessionlens.storage import connect

    client = connect(f"chdb://{store}", database="otel")
    rows = client.query("SELECT reinterpretAsUInt64(reverse(unhex(SpanId))) - 1, count() "
                        "FROM otel_traces GROUP BY SpanId").result_rows
    stored = {span: n for span, n in rows}
    acked = quiet.acked | mixed.acked
    lost = acked - stored.keys()
    unacked_stored = stored.keys() - acked
    print("\nresults")
    print(f"  acknowledged spans: {len(acked):,}   stored spans: {len(stored):,}   "
          f"lost: {len(lost):,}   stored twice: {sum(1 for n in stored.values() if n > 1):,}   "
          f"stored though not acknowledged (a retry's lost ack or a client stopped mid-retry): "
          f"{len(unacked_stored):,}")
    print(f"  collector exit code after SIGTERM: {drained}; peak RSS (VmHWM): {peak:,.0f} MiB")
    print("  refused requests by reason:")
    for reason, n in sorted((quiet.refused + mixed.refused).items(), key=lambda item: -item[1]):
        print(f"    {n:6d}  {reason}")
    ratio = mixed_rate / quiet_rate if quiet_rate else float("nan")
    print(f"  good clients: {quiet_rate:,.0f} spans/s (p99 {quiet_p99:.0f} ms) alone, "
          f"{mixed_rate:,.0f} spans/s (p99 {mixed_p99:.0f} ms) with hostile clients: x{ratio:.2f}")
    ok = not lost and peak <= 1024 and drained == 0
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
