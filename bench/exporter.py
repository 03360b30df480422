"""Throughput of the ClickHouse exporter on embedded chDB, on LLM-like spans (~16 attributes).

Prints, never asserts:
- export(): spans/s made durable (columns built, marshalled, fsynced to the spool), while
  ClickHouse is away so nothing competes with it;
- drain: spans/s the background inserter moves from the spool into otel_traces;
- both at once: spans/s from export() to rows in otel_traces.

Run: .venv/bin/python bench/exporter.py [spans] [batch]
"""

from __future__ import annotations

import sys
import tempfile
import time

from sessionlens import conventions as conv
from sessionlens.collector import clickhouse_exporter as chx
from sessionlens.collector.pdata import Span


def llm_span(n: int) -> Span:
    attributes = {
        conv.OPERATION: "chat",
        conv.PROVIDER: "openai",
        conv.REQUEST_MODEL: "gpt-4o-mini",
        conv.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        conv.RESPONSE_ID: f"chatcmpl-{n:012d}",
        conv.FINISH_REASONS: '["stop"]',
        conv.INPUT_TOKENS: str(100 + n % 900),
        conv.OUTPUT_TOKENS: str(20 + n % 300),
        conv.SERVER_ADDRESS: "api.openai.com",
        conv.SERVER_PORT: "443",
        conv.USER_ID: f"user-{n % 1000}",
        conv.AGENT_ID: f"agent-{n % 5}",
        conv.RUN_ID: f"run-{n // 8}",
        conv.REQUEST_ID: f"req-{n}",
        conv.ENVIRONMENT: "prod",
    }
    if n % 2:
        attributes[conv.SESSION_ID] = f"session-{n // 40}"
    start = 1_763_700_000_000_000_000 + n * 1_000_000
    return Span(
        trace_id=(n // 4 + 1).to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
        parent_span_id=b"", name="chat gpt-4o-mini", kind=3,
        start_time_unix_nano=start, end_time_unix_nano=start + 850_000_000,
        attributes=attributes, resource=RESOURCE, scope_name="sessionlens", scope_version="0.1.0",
    )


RESOURCE = {conv.SERVICE_NAME: "support-bot", conv.SERVICE_INSTANCE_ID: "pod-1", "telemetry.sdk.language": "python"}


def drained(exporter: chx.ClickHouseExporter) -> None:
    while exporter._spool.pending() or exporter._spool.inflight:
        time.sleep(0.005)


def main(total: int = 100_000, batch: int = 2_000) -> None:
    root = tempfile.mkdtemp(prefix="bench-exporter-")
    config = chx.Config(
        endpoint=f"chdb://{root}/store",
        spool=chx.SpoolConfig(directory=f"{root}/spool", max_size_mib=4096),
        dedup_window=4 * total,
    )
    exporter = chx.create(config, None)
    exporter.start(None)
    client = exporter.new_client()
    table = f"{config.database}.{config.traces_table_name}"
    batches = [[llm_span(n) for n in range(i, min(i + batch, total))] for i in range(0, total, batch)]
    print(f"{total} spans, {len(batches[0][0].attributes) + 1} attributes each, batches of {batch}")

    client.command(f"RENAME TABLE {table} TO {table}_away")  # ClickHouse away: export() alone
    t0 = time.perf_counter()
    for spans in batches:
        exporter.export(spans)
    t1 = time.perf_counter()
    print(f"export() alone:           {total / (t1 - t0):>10,.0f} spans/s  ({(t1 - t0) / len(batches) * 1e3:.1f} ms per batch, fsync included)")

    client.command(f"RENAME TABLE {table}_away TO {table}")
    t0 = time.perf_counter()
    drained(exporter)
    t1 = time.perf_counter()
    print(f"background insert (drain): {total / (t1 - t0):>10,.0f} spans/s")

    more = [[llm_span(total + n) for n in range(i, min(i + batch, total))] for i in range(0, total, batch)]
    t0 = time.perf_counter()
    for spans in more:
        exporter.export(spans)
    t1 = time.perf_counter()
    drained(exporter)
    t2 = time.perf_counter()
    print(f"export() while inserting: {total / (t1 - t0):>10,.0f} spans/s")
    print(f"export() -> otel_traces:  {total / (t2 - t0):>10,.0f} spans/s end to end")
    rows = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
    print(f"rows in otel_traces: {rows}")
    exporter.shutdown()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
