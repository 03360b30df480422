"""Ingest benchmark: OTLP/gRPC Export → rows in ClickHouse, through the whole collector.

Starts ``sessionlens collector`` as a subprocess on its own embedded chDB store (a temp
directory) with the repository's pipeline (batch → normalize → autosession → cost →
clickhouse), then:

1. throughput: ``--clients`` concurrent clients send ``--spans`` realistic LLM spans
   (~17 attributes, half with an explicit session) as fast as they are acknowledged. The
   figure is spans / (time from the first Export until every row is committed): the
   embedded store is single-process, so "committed" is measured as the collector's clean
   shutdown after draining its spool, and the rows are then counted in ``session_list``;
2. latency: a fresh collector on the same store gets a steady ``--rate`` spans/s for
   ``--seconds`` (then again at half the sustained throughput); prints ack latency p50/p99;
3. the collector's peak RSS (VmHWM from /proc) in each phase.

Requests are pre-encoded protobuf bytes sent through a raw gRPC channel, so the client
side stays cheap. Run: ``.venv/bin/python bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
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
      grpc: {{endpoint: "127.0.0.1:{port}", max_concurrent_requests: 64}}
processors:
  batch: {{send_batch_size: {batch_size}, timeout: {timeout}}}
  normalize:
  autosession:
  cost:
exporters:
  clickhouse:
    endpoint: "chdb://{store}"
    database: otel
    timeout: 600s
    spool: {{directory: "{spool}", max_size_mib: 4096}}{exporter_extra}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, normalize, autosession, cost]
      exporters: [clickhouse]
"""

TRACE_MARK = b"\xee" * 8  # replaced per request to make (trace id, span id) unique
SESSION_MARK = "SESSMARK"  # replaced per request: sessions spread over requests


def template(spans: int, start_ns: int) -> bytes:
    """One request of realistic LLM spans whose trace ids start with TRACE_MARK."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource = {
        c.SERVICE_NAME: "support-bot", c.SERVICE_INSTANCE_ID: "pod-7f9c", c.HOST_NAME: "node-3",
        c.ENVIRONMENT: "production",
    }
    for key, value in resource.items():
        kv = resource_spans.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = resource_spans.scope_spans.add()
    scope.scope.name, scope.scope.version = "sessionlens.instrumentation", "0.1.0"
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = TRACE_MARK + (i // 4).to_bytes(8, "big")  # 4 calls per trace
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = "chat gpt-4o-mini"
        span.kind = 3
        span.start_time_unix_nano = start_ns + i * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 850_000_000
        strings = {
            c.OPERATION: "chat", c.PROVIDER: "openai", c.REQUEST_MODEL: "gpt-4o-mini",
            c.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18", c.RESPONSE_ID: f"chatcmpl-{i:08d}AbCdEf",
            c.SERVER_ADDRESS: "api.openai.com", c.USER_ID: f"user-{SESSION_MARK}-{i % 16}",
            c.AGENT_ID: "triage", c.RUN_ID: f"run-{SESSION_MARK}-{i // 8}",
            c.REQUEST_ID: f"req-{i:06d}",
        }
        if i % 2 == 0:
            strings[c.SESSION_ID] = f"sess-{SESSION_MARK}-{i % 32}"
        for key, value in strings.items():
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
        for key, value in {c.INPUT_TOKENS: 1200 + i % 300, c.OUTPUT_TOKENS: 180 + i % 60,
                           c.CACHE_READ_INPUT_TOKENS: 512, c.SERVER_PORT: 443}.items():
            kv = span.attributes.add()
            kv.key, kv.value.int_value = key, value
        kv = span.attributes.add()
        kv.key, kv.value.double_value = c.TIME_TO_FIRST_CHUNK, 0.231
        kv = span.attributes.add()
        kv.key = c.FINISH_REASONS
        kv.value.array_value.values.add().string_value = "stop"
    return request.SerializeToString()


def unique(body: bytes, n: int) -> bytes:
    # n + 1: an all-zero trace id would be rejected as invalid.
    return body.replace(TRACE_MARK, (n + 1).to_bytes(8, "big")).replace(
        SESSION_MARK.encode(), f"{n % 10**8:08d}".encode()
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(config_path: str, log_path: str) -> subprocess.Popen:
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sessionlens", "collector", "--config", config_path],
            stdout=log, stderr=log,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log_path) as log:
            text = log.read()
        if "listening" in text:
            return process
        if process.poll() is not None:
            sys.exit(f"collector failed to start:\n{text}")
        time.sleep(0.05)
    sys.exit("collector did not start within 120 s")


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds the collector's threads used so far, summed by OS thread name.

    Python's threads are all ``python``, except the exporter's inserter: chDB renames the
    thread that runs an insert into a table with materialized views ``Unknown``, so that
    row is the inserter (its Python work plus chDB's insert on it), shown as ``inserter``.
    chDB's engine threads carry their pool names (``MergeMutate``, ...).
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")].rstrip("_0123456789")
        name = "inserter" if name == "Unknown" else name
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def stop_collector(process: subprocess.Popen) -> float:
    """SIGTERM (the collector drains its spool into ClickHouse); returns when it exited."""
    process.send_signal(signal.SIGTERM)
    if process.wait(timeout=900) != 0:
        sys.exit(f"collector exited with {process.returncode}")
    return time.monotonic()


def channel_export(port: int):
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
    )
    return channel, export_stub(channel)


def send(export, body: bytes) -> bool:
    """One Export, retried while the collector answers UNAVAILABLE; True once acknowledged."""
    while True:
        try:
            response = export(body, timeout=60)
            return response.partial_success.rejected_spans == 0
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.05)


def throughput(port: int, body: bytes, per_request: int, total: int, clients: int) -> tuple[float, float]:
    """Send ``total`` spans with ``clients`` threads; returns (start, last ack) monotonic times."""
    requests = total // per_request
    counter = iter(range(requests))
    lock = threading.Lock()
    rejected: list[int] = []

    def client() -> None:
        channel, export = channel_export(port)
        with channel:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                if not send(export, unique(body, n)):
                    rejected.append(n)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if rejected:
        sys.exit(f"the collector rejected spans of {len(rejected)} requests")
    return start, time.monotonic()


def paced(port: int, body: bytes, per_request: int, rate: int, seconds: float, first: int) -> list[float]:
    """Steady ``rate`` spans/s for ``seconds``; returns each request's ack latency (s)."""
    interval = per_request / rate
    count = int(seconds / interval)
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    workers = 32  # enough that a slow ack never delays the next send
    bodies = [unique(body, first + n) for n in range(count)]

    def worker(k: int) -> None:
        channel, export = channel_export(port)
        with channel:
            for n in range(k, count, workers):
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent = time.monotonic()
                send(export, bodies[n])
                with lock:
                    latencies.append(time.monotonic() - sent)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def count_rows(store: str) -> tuple[int, int, int]:
    """(rows in otel_traces, sessions in session_list, sum of their llm_calls), in a subprocess."""
    script = textwrap.dedent(f"""
        import json
        from sessionlens.storage import connect
        client = connect("chdb://{store}", database="otel")
        traces = client.command("SELECT count() FROM otel_traces")
        sessions, calls = client.query("SELECT count(), sum(llm_calls) FROM session_list").result_rows[0]
        print(json.dumps([traces, sessions, calls]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout.splitlines()[-1]))


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=600_000, help="spans in the throughput phase")
    parser.add_argument("--per-request", type=int, default=512, help="spans per Export (the SDK's batch)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (throughput)")
    parser.add_argument("--rate", type=int, default=20_000, help="spans/s in the latency phase")
    parser.add_argument("--latency-per-request", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency phase")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--timeout", default="100ms", help="batch timeout")
    parser.add_argument("--insert-max-spans", type=int, default=16384,
                        help="the exporter's insert_max_spans, as in otel-config.yaml (0: its default)")
    parser.add_argument("--insert-interval", default="",
                        help="the exporter's insert_interval (empty: its default)")
    parser.add_argument("--engine-path", action="store_true",
                        help="the exporter's experimental engine_path (decode and insert in chDB)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="sessionlens-bench-")
    store, spool = os.path.join(workdir, "ch"), os.path.join(workdir, "spool")
    port = free_port()
    config_path = os.path.join(workdir, "collector.yaml")
    with open(config_path, "w") as f:
        f.write(CONFIG.format(port=port, store=store, spool=spool, batch_size=args.batch_size,
                              timeout=args.timeout, exporter_extra=(
                                  (f"\n    insert_max_spans: {args.insert_max_spans}" if args.insert_max_spans else "")
                                  + (f"\n    insert_interval: {args.insert_interval}" if args.insert_interval else "")
                                  + ("\n    engine_path: true" if args.engine_path else ""))))
    now = time.time_ns()
    body = template(args.per_request, now)
    print(f"collector: {config_path}; {os.cpu_count()} cores; request {len(body)} bytes "
          f"({args.per_request} spans, {len(body) // args.per_request} B/span)")

    process = start_collector(config_path, os.path.join(workdir, "throughput.log"))
    start, acked = throughput(port, body, args.per_request, args.spans, args.clients)
    sent = args.spans // args.per_request * args.per_request
    rss = peak_rss_mib(process.pid)
    cpu = cpu_by_thread(process.pid)  # the spool may still be draining: CPU up to the last ack
    stored_at = stop_collector(process)
    traces, sessions, calls = count_rows(store)
    print(f"throughput: {sent} spans by {args.clients} clients: acknowledged in {acked - start:.2f} s "
          f"= {sent / (acked - start):,.0f} spans/s acked; committed to ClickHouse in "
          f"{stored_at - start:.2f} s = {sent / (stored_at - start):,.0f} spans/s sustained")
    print(f"  rows: otel_traces {traces}, session_list {sessions} sessions with "
          f"{calls} llm_calls (expected {sent}); collector peak RSS {rss:.0f} MiB")
    top = sorted(cpu.items(), key=lambda item: -item[1])[:6]
    print(f"  collector CPU until the last ack: {sum(cpu.values()) / sent * 1e6:.1f} µs/span; by thread: "
          + ", ".join(f"{name} {seconds / sent * 1e6:.1f}" for name, seconds in top))

    sustained = sent / (stored_at - start)
    # At the target rate the collector may be saturated; half its sustained rate shows the
    # group commit's own latency.
    rates = [args.rate, max(1000, int(sustained / 2) // 1000 * 1000)]
    for phase, rate in enumerate(rates):
        process = start_collector(config_path, os.path.join(workdir, f"latency{phase}.log"))
        latencies = paced(port, template(args.latency_per_request, now), args.latency_per_request,
                          rate, args.seconds, first=10**6 * (phase + 1))
        rss = peak_rss_mib(process.pid)
        stop_collector(process)
        print(f"latency at {rate:,} spans/s ({args.latency_per_request} spans/request, "
              f"{len(latencies)} requests): ack p50 {percentile(latencies, 50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
              f"collector peak RSS {rss:.0f} MiB")
    if args.keep:
        print(f"kept {workdir}")
    else:
        subprocess.run(["rm", "-rf", workdir], check=False)


if __name__ == "__main__":
    main()
