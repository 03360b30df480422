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
