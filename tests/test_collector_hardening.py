"""Hardening, end to end: real collector processes on loopback against shared directories,
full disks and hostile clients (issue 8)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import pytest

from sessionlens.collector.otlp_grpc import export_stub
from collector_setup import CONFIG, free_port, launch_collector, load_request, start_collector, wait_for


def write_config(tmp_path, name: str = "collector.yaml", **changes) -> tuple:
    """A collector config on its own store and spool; ``changes`` replace lines of CONFIG."""
    port = free_port()
    spool = changes.pop("spool", tmp_path / "spool")
    url = changes.pop("url", f"chdb://{tmp_path / 'ch'}")
    text = CONFIG.format(port=port, url=url, database="otel", spool=spool)
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path, port, url


def stored_span_counts(url: str) -> dict[int, int]:
    """span number (as ``load_request`` numbers them) → times stored, read by a new process."""
    query = textwrap.dedent(f"""
        import json
        from sessionlens.collector.storage import connect
        client = connect({url!r}, database="otel")
        rows = client.query("SELECT SpanId, count() FROM otel_traces GROUP BY SpanId").result_rows
        print(json.dumps(rows))
    """)
    output = subprocess.run(
        [sys.executable, "-c", query], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return {int(span_id, 16) - 1: count for span_id, count in json.loads(output.splitlines()[-1])}


def stop(process: subprocess.Popen, log_path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0, log_path.read_text()


# --- one spool directory, one collector ------------------------------------------------


def test_a_second_collector_on_the_same_spool_refuses_to_start(tmp_path):
    config, port, _ = write_config(tmp_path)
    first = start_collector(config, tmp_path / "first.log")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export_stub(channel)(load_request(0, 50), timeout=10)
        # Its own store and ports, the same spool directory.
        other, _, _ = write_config(tmp_path, "second.yaml", spool=tmp_path / "spool", url=f"chdb://{tmp_path / 'ch2'}")
        second = launch_collector(other, tmp_path / "second.log")
        try:
            assert second.wait(timeout=60) == 1
        finally:
            if second.poll() is None:
                second.kill()
        message = (tmp_path / "second.log").read_text()
        assert f"in use by another collector (pid {first.pid})" in message, message
        assert "spool.directory" in message
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # the first one is unharmed
            export_stub(channel)(load_request(50, 50), timeout=10)
    finally:
        stop(first, tmp_path / "first.log")
    assert stored_span_counts(f"chdb://{tmp_path / 'ch'}") == {i: 1 for i in range(100)}


# --- a full disk -----------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path):
    """A 3 MiB tmpfs of the test's own (the tests run as root, as CI does)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_spool_disk_refuses_with_a_reason_and_recovers_by_itself(tmp_path, tiny_fs):
    # Inserts every 2 s: between them the load fills the 3 MiB disk.
    config, port, url = write_config(
        tmp_path, spool=tiny_fs / "spool", **{"insert_interval: 20ms": "insert_interval: 2s"}
    )
    process = start_collector(config, tmp_path / "collector.log")
    acked: set[int] = set()
    refusals: list[str] = []
    lock = threading.Lock()
    next_id = iter(range(0, 10**9, 200))
    full = threading.Event()

    def load() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = export_stub(channel)
            while not full.is_set():
                with lock:
                    first = next(next_id)
                try:
                    response = export(load_request(first, 200), timeout=10)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                    with lock:
                        refusals.append(exc.details())
                    full.set()
                    continue
                assert response.partial_success.rejected_spans == 0
                with lock:
                    acked.update(range(first, first + 200))

    try:
        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert full.is_set() and len(acked) >= 2000
        assert "filesystem is full" in refusals[0] and "free space" in refusals[0], refusals[0]

        # Nobody frees the disk but the collector's own drain: new spans are taken again.
        def accepted():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                with lock:
                    first = next(next_id)
                try:
                    export_stub(channel)(load_request(first, 200), timeout=10)
                except grpc.RpcError:
                    return False
                acked.update(range(first, first + 200))
                return True

        wait_for(accepted, timeout=60, what="the collector to accept spans again")
    finally:
        stop(process, tmp_path / "collector.log")
    stored = stored_span_counts(url)
    assert acked <= stored.keys(), f"{len(acked - stored.keys())} acknowledged spans lost"
    assert set(stored.values()) == {1}


# --- poison spans --------------------------------------------------------------------------


def _poison_request(n: int, *, attributes: dict | None = None, start: int | None = None,
                    event_time: int | None = None) -> bytes:
    """One good span and one span (id n) carrying the poison, in one request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for span_number, poison in ((n, True), (n + 1, False)):
        span = scope.spans.add()
        span.trace_id, span.span_id = (span_number + 1).to_bytes(16, "big"), (span_number + 1).to_bytes(8, "big")
        span.name = "poison" if poison else "good"
        span.start_time_unix_nano = start if poison and start is not None else now
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
        values = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.output_tokens": 10, **((attributes or {}) if poison else {})}
        for key, value in values.items():
            kv = span.attributes.add()
            kv.key = key
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                kv.value.string_value = str(value)
            elif isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.int_value = value
        if poison and event_time is not None:
            event = span.events.add()
            event.name, event.time_unix_nano = "late", event_time
    return request.SerializeToString()


POISONS = {  # span number → (request fields, rejected?)
    1_000_000: (dict(attributes={"gen_ai.usage.input_tokens": "9" * 401}), False),
    1_000_010: (dict(attributes={"langfuse.observation.usage_details":
                                 '{"input": 1.7e308, "input_cached_tokens": 1e308, "output": 5}'}), False),
    1_000_020: (dict(attributes={"gen_ai.usage.cost": float("nan")}), False),
    1_000_030: (dict(attributes={"gen_ai.usage.cost": -1_000_000.0}), False),
    1_000_040: (dict(attributes={"gen_ai.usage.input_tokens": str(2**63)}), False),
    1_000_050: (dict(attributes={"gen_ai.usage.cost": "1.7e308"}), False),
    1_000_060: (dict(start=2**63), True),
    1_000_070: (dict(event_time=2**64 - 1), True),
}


def test_poison_spans_cost_no_other_span(tmp_path):
    config, port, url = write_config(tmp_path)
    process = start_collector(config, tmp_path / "collector.log")
    innocent = [load_request(n * 50, 50) for n in range(70)]
    poison = [_poison_request(n, **fields) for n, (fields, _) in POISONS.items()]
    bodies = innocent[:35] + poison + innocent[35:]
    outcomes: list = [None] * len(bodies)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = export_stub(channel)

            def send(i: int) -> None:
                try:
                    outcomes[i] = export(bodies[i], timeout=30)
                except grpc.RpcError as exc:
                    outcomes[i] = exc

            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            errors = [o for o in outcomes if isinstance(o, grpc.RpcError)]
            assert not errors, [(e.code(), e.details()) for e in errors[:3]]
            rejected = {n: outcomes[35 + i].partial_success for i, n in enumerate(POISONS)}
            for n, (_, should_reject) in POISONS.items():
                assert rejected[n].rejected_spans == (1 if should_reject else 0), (n, rejected[n])
            assert "past 2262-04-11" in rejected[1_000_060].error_message
            assert all(o.partial_success.rejected_spans == 0 for o in outcomes[:35] + outcomes[35 + len(POISONS):])
            # The spool holds nothing ClickHouse refuses: what comes after is stored too.
            export(load_request(10_000, 50), timeout=30)
    finally:
        stop(process, tmp_path / "collector.log")
    stored = stored_span_counts(url)
    expected = set(range(70 * 50)) | set(range(10_000, 10_050))
    expected |= {n + 1 for n in POISONS} | {n for n, (_, rejected) in POISONS.items() if not rejected}
    assert stored == {n: 1 for n in expected}
    query = textwrap.dedent(f"""
        import json
        from sessionlens.collector.storage import connect
        client = connect({url!r}, database="otel")
        rows = client.query("SELECT SpanAttributes FROM otel_traces WHERE SpanName = 'poison'").result_rows
        print(json.dumps([r[0] for r in rows]))
    """)
    output = subprocess.run([sys.executable, "-c", query], capture_output=True, text=True, check=True, timeout=120)
    for attributes in json.loads(output.stdout.splitlines()[-1]):
        assert "sessionlens.invalid_numbers" in attributes, attributes
        cost = attributes.get("gen_ai.usage.cost")
        assert cost is None or 0 <= float(cost) < 1e12, attributes
        assert len(attributes.get("gen_ai.usage.input_tokens", "")) < 20, attributes
