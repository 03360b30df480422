"""Surfaces benchmark: the sessions API and web UI of a collector that is ingesting.

    python bench/surfaces.py [--spans 10_000_000 --sessions 100_000 --path DIR
                              --rate 10000 --seconds 20]

1. Builds (or reuses, at ``--path``) an embedded store with ``--spans`` synthetic LLM
   spans in ``--sessions`` sessions (``bench/query_views.py``'s time-local load, merges
   settled) plus one session of ``--big`` spans, in a subprocess (a chDB path belongs to
   one process at a time).
2. Starts ``sessionlens collector`` on that store as a subprocess, with the repository's
   pipeline and the ``sessions_api`` extension.
3. Reader threads loop over the API for ``--seconds`` with no ingest: a list page (default,
   and filtered by user), a session page (HTML), and the large session's detail. Then it
   sends ``--rate`` spans/s of realistic LLM spans over OTLP/gRPC for ``--seconds``, once
   alone and once while the readers loop again.

Prints the API list page, session page and large-session detail p50/p95 without and with
ingest (against the targets: 300 ms, 500 ms, 1 s), and the ingest rate and ack p99 with and
without readers. Figures come from one run on whatever else the machine is doing: compare the
two ingest lines with each other, not with another run.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import httpx

from ingest import free_port, paced, percentile, template

BIG_SESSION = "big-session"

CONFIG = """
extensions:
  sessions_api: {{endpoint: "127.0.0.1:{api}"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}", max_recv_msg_size_mib: 64}}
processors:
  batch: {{send_batch_max_size: 16384, timeout: 100ms}}
  normalize:
  autosession:
  cost:
exporters:
  clickhouse:
    endpoint: "chdb://{store}"
    database: {database}
    insert_max_spans: 16384
    spool: {{directory: "{spool}"}}
service:
  extensions: [sessions_api]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, normalize, autosession, cost]
      exporters: [clickhouse]
"""

BUILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {bench!r})
    from query_views import prepare, settle_merges
    from sessionlens.storage import connect
    client = connect("chdb://{store}")
    # a store of an earlier run holds more (the large session, the ingested spans): reuse it
    reuse = client.command("EXISTS TABLE {database}.otel_traces") and client.command(
        "SELECT count() FROM {database}.otel_traces") >= {spans}
    rate = None if reuse else prepare(client, {database!r}, {spans}, {sessions}, "time-local")
    if not client.command("SELECT count() FROM {database}.session_list WHERE session_id = '{big}'"):
        # one long session: the first {big_spans} spans again, under their own id
        client.command(
            "INSERT INTO {database}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, "
            "SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, "
            "SpanAttributes, Duration, StatusCode, StatusMessage) "
            "SELECT Timestamp, TraceId, lower(hex(cityHash64(SpanId, 7))), ParentSpanId, "
            "SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, "
            "mapUpdate(SpanAttributes, map('session.id', '{big}')), Duration, StatusCode, "
            "StatusMessage FROM {database}.otel_traces ORDER BY Timestamp LIMIT {big_spans}")
    settle_merges(client, {database!r}, 600)
    print("load", rate if rate else "reused")
""")


def build_store(store: str, database: str, spans: int, sessions: int, big: int) -> None:
    code = BUILD.format(bench=os.path.dirname(os.path.abspath(__file__)), store=store,
                        database=database, spans=spans, sessions=sessions, big=BIG_SESSION,
                        big_spans=big)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    print(f"store: {spans:,} spans / {sessions:,} sessions + a {big:,}-span session at {store} "
          f"({out.stdout.strip()}; {time.monotonic() - started:.0f} s)", flush=True)


def start_collector(config: str, log: str) -> subprocess.Popen:
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "sessionlens", "collector", "--config", config],
                                   stdout=out, stderr=out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the collector did not start:\n{open(log).read()}")
        if "listening" in open(log).read():
            return process
        time.sleep(0.2)
    sys.exit("the collector did not start in 300 s")


class Readers:
    """Threads looping over the surfaces, recording each request's latency by kind."""

    def __init__(self, base: str, ids: list[str], users: list[str], threads: int) -> None:
        self.base, self.ids, self.users = base, ids, users
        self.latencies: dict[str, list[float]] = {"list": [], "list user=": [], "session page": [],
                                                  "big detail": []}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]

    def _timed(self, client: httpx.Client, kind: str, path: str, **params) -> None:
        started = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            sys.exit(f"{path} answered {response.status_code}: {response.text[:200]}")
        self.latencies[kind].append(elapsed)

    def _run(self, k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=self.base, timeout=120) as client:
            n = 0
            while not self.stop.is_set():
                step = n % 4
                if step == 0:
                    self._timed(client, "list", "/v1/sessions")
                elif step == 1:
                    self._timed(client, "list user=", "/v1/sessions", user=rng.choice(self.users))
                elif step == 2:
                    self._timed(client, "session page", f"/sessions/{rng.choice(self.ids)}")
                else:
                    self._timed(client, "big detail", f"/v1/sessions/{BIG_SESSION}")
                n += 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def ingest(port: int, rate: int, seconds: float, first: int) -> tuple[float, float]:
    """Paced ingest; (achieved spans/s over the phase, ack p99 ms)."""
    per_request = 500
    body = template(per_request, time.time_ns())
    started = time.monotonic()
    latencies = paced(port, body, per_request, rate, seconds, first)
    elapsed = time.monotonic() - started
    return len(latencies) * per_request / elapsed, percentile(latencies, 99) * 1000


def ms(values: list[float], q: int) -> str:
    return f"{percentile(values, q) * 1000:,.0f} ms" if values else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    count = lambda v: int(v.replace("_", ""))  # noqa: E731
    parser.add_argument("--spans", type=count, default=10_000_000)
    parser.add_argument("--sessions", type=count, default=100_000)
    parser.add_argument("--big", type=count, default=10_000, help="spans of the large session")
    parser.add_argument("--path", help="store directory to build or reuse (default: a temporary one)")
    parser.add_argument("--database", default="otel")
    parser.add_argument("--rate", type=count, default=10_000, help="spans/s ingested meanwhile")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--readers", type=int, default=2, help="reader threads")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="sessionlens-surfaces-")
    store = os.path.abspath(args.path or os.path.join(work, "store"))
    build_store(store, args.database, args.spans, args.sessions, args.big)
    api, grpc_port = free_port(), free_port()
    config = os.path.join(work, "collector.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(api=api, grpc=grpc_port, store=store, database=args.database,
                              spool=os.path.join(work, "spool")))
    process = start_collector(config, os.path.join(work, "collector.log"))
    base = f"http://127.0.0.1:{api}"
    try:
        page = httpx.get(f"{base}/v1/sessions", params={"limit": 200}, timeout=120).json()["sessions"]
        ids = [r["session_id"] for r in page]
        users = sorted({r["user_id"] for r in page if r["user_id"]})
        spans = httpx.get(f"{base}/v1/sessions/{BIG_SESSION}", timeout=120).json()
        print(f"large session: {spans['session']['llm_calls']:,} calls, first page of "
              f"{len(spans['spans'])} spans, next_spans_cursor {'set' if spans['next_spans_cursor'] else 'none'}")
        with Readers(base, ids, users, args.readers) as idle:
            time.sleep(args.seconds)
        alone_rate, alone_p99 = ingest(grpc_port, args.rate, args.seconds, 0)
        with Readers(base, ids, users, args.readers) as readers:
            busy_rate, busy_p99 = ingest(grpc_port, args.rate, args.seconds, 10**6)
        for title, lat in ((f"no ingest ({args.readers} reader threads", idle.latencies),
                           (f"while ingesting {args.rate:,} spans/s ({args.readers} reader threads",
                            readers.latencies)):
            print(f"{title}, {sum(map(len, lat.values()))} requests):")
            print(f"  API list page        p50 {ms(lat['list'], 50):>8}  p95 {ms(lat['list'], 95):>8}  (target p95 300 ms)")
            print(f"  API list user=       p50 {ms(lat['list user='], 50):>8}  p95 {ms(lat['list user='], 95):>8}")
            print(f"  session page (HTML)  p50 {ms(lat['session page'], 50):>8}  p95 {ms(lat['session page'], 95):>8}  (target 500 ms)")
            print(f"  {args.big:,}-span detail  p50 {ms(lat['big detail'], 50):>8}  p95 {ms(lat['big detail'], 95):>8}  (target 1 s)")
        print(f"ingest without readers: {alone_rate:>9,.0f} spans/s acknowledged, ack p99 {alone_p99:,.0f} ms")
        print(f"ingest with readers:    {busy_rate:>9,.0f} spans/s acknowledged, ack p99 {busy_p99:,.0f} ms "
              f"({busy_rate / alone_rate:.2f}x)")
    finally:
        process.terminate()
        process.wait(120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
