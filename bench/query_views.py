"""Time the session views at scale on embedded storage.

    python bench/query_views.py [--spans 10_000_000 --sessions 100_000 --path DIR]

Loads synthetic LLM spans (~16 span attributes, agent spans wrapping chat calls, several
models, errors) into ``otel_traces`` with INSERT … SELECT in chunks — through the same
materialized views as real inserts — then prints the median time of a session_list page,
a session_detail and 30-day session_vitals against the targets of SPEC §7.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from sessionlens.collector.storage import connect
from sessionlens.schema.migrate import SchemaOptions, apply

DAYS = 30
SPANS_PER_TRACE = 5  # one invoke_agent span, four chat calls
CHUNK = 1_000_000
TARGETS_MS = {"session_list page": 300, "session_detail": 50, "session_vitals 30d": 500}

# n -> session s (round-robin, so every chunk touches every session, as interleaved live
# traffic does) and k, the span's index within its session; sessions start anywhere in the
# last DAYS days, spans 3 s apart.
GENERATE = """
INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage)
SELECT
    now64(9) - toIntervalSecond(cityHash64(s) % ({days} * 86400 - 600) + 600)
        + toIntervalMillisecond(k * 3000) AS Timestamp,
    lower(hex(cityHash64(s, intDiv(k, {per_trace})))) AS TraceId,
    lower(hex(cityHash64(n, 1))) AS SpanId,
    if(agent_span, '', lower(hex(cityHash64(s * {spans_per_session} + k - k % {per_trace}, 1))))
        AS ParentSpanId,
    if(agent_span, 'invoke_agent', concat('chat ', model)) AS SpanName,
    if(agent_span, 'Internal', 'Client') AS SpanKind,
    service AS ServiceName,
    map('service.name', service, 'sessionlens.project', concat('project-', toString(s % 3)),
        'deployment.environment.name', if(s % 10 = 0, 'staging', 'prod')) AS ResourceAttributes,
    'sessionlens' AS ScopeName,
    '0.1.0' AS ScopeVersion,
    map('session.id', concat('sess-', toString(s)),
        'sessionlens.session.source', 'explicit',
        'user.id', concat('user-', toString(s % 20000)),
        'gen_ai.operation.name', if(agent_span, 'invoke_agent', 'chat'),
        'gen_ai.provider.name', if(startsWith(model, 'claude'), 'anthropic', 'openai'),
        'gen_ai.request.model', model,
        'gen_ai.response.model', model,
        'gen_ai.usage.input_tokens', toString(if(agent_span, 0, 200 + cityHash64(n, 2) % 3000)),
        'gen_ai.usage.output_tokens', toString(if(agent_span, 0, 20 + cityHash64(n, 3) % 800)),
        'gen_ai.usage.cache_read.input_tokens', toString(if(agent_span, 0, cityHash64(n, 4) % 200)),
        'gen_ai.agent.id', concat('agent-', toString(s % 7)),
        'sessionlens.run.id', concat('run-', toString(s), '-', toString(intDiv(k, 20))),
        'sessionlens.request.id', lower(hex(cityHash64(n, 5))),
        'gen_ai.response.id', concat('resp-', toString(n)),
        'gen_ai.response.finish_reasons', '["stop"]',
        'server.address', 'api.example.com') AS SpanAttributes,
    (if(agent_span, 4000, 300) + cityHash64(n, 6) % 2000) * 1000000 AS Duration,
    if(cityHash64(n, 7) % 50 = 0, 'Error', 'Ok') AS StatusCode,
    if(StatusCode = 'Error', 'upstream error', '') AS StatusMessage
FROM (
    SELECT number AS n, n % {sessions} AS s, intDiv(n, {sessions}) AS k,
        k % {per_trace} = 0 AS agent_span,
        ['gpt-4o', 'gpt-4o-mini-2024-07-18', 'claude-3-5-sonnet-20241022', 'gemini-2.5-flash',
         'in-house-model'][1 + cityHash64(s, k) % 5] AS model,
        ['chatbot', 'support-agent', 'batch'][1 + s % 3] AS service
    FROM numbers({start}, {count})
)
"""

QUERIES = {
    "session_list page": "SELECT * FROM {db}.session_list ORDER BY last_seen DESC LIMIT 50",
    "session_detail": "SELECT * FROM {db}.session_detail(session_id = {{sid:String}})",
    "session_vitals 30d": (
        "SELECT * FROM {db}.session_vitals(since = {{since:String}}, until = '', project = '', "
        "environment = '', service = '', agent = '', user = '')"
    ),
}


def load(client, db: str, spans: int, sessions: int) -> float:
    """Insert the synthetic spans; return the spans per second achieved."""
    started = time.perf_counter()
    for start in range(0, spans, CHUNK):
        count = min(CHUNK, spans - start)
        client.command(
            GENERATE.format(
                db=db, days=DAYS, per_trace=SPANS_PER_TRACE, sessions=sessions,
                spans_per_session=-(-spans // sessions), start=start, count=count,
            )
        )
        done = start + count
        print(f"  loaded {done:>11,} spans", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return spans / (time.perf_counter() - started)


def time_query(client, sql: str, params: dict, runs: int) -> tuple[float, int]:
    """Median wall time in ms over ``runs`` (after one warm-up) and the row count."""
    rows = len(client.query(sql, parameters=params).result_rows)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        client.query(sql, parameters=params)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=lambda v: int(v.replace("_", "")), default=10_000_000)
    parser.add_argument("--sessions", type=lambda v: int(v.replace("_", "")), default=100_000)
    parser.add_argument("--path", help="embedded store directory (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query")
    args = parser.parse_args(argv)

    path = args.path or tempfile.mkdtemp(prefix="sessionlens-bench-")
    client = connect("chdb://" + path)
    db = "bench"
    options = SchemaOptions(database=db)
    have = 0
    if client.command(f"EXISTS TABLE {db}.otel_traces"):
        have = client.command(f"SELECT count() FROM {db}.otel_traces")
    if have != args.spans:
        client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        apply(client, options)
        print(f"loading {args.spans:,} spans / {args.sessions:,} sessions into {path}", file=sys.stderr)
        rate = load(client, db, args.spans, args.sessions)
        print(f"load: {rate:,.0f} spans/s (INSERT … SELECT through the materialized views)")
    rollup_rows = client.command(f"SELECT count() FROM {db}.otel_traces_sessions")
    sessions = client.command(f"SELECT count() FROM {db}.session_list")
    print(f"spans: {args.spans:,}  sessions: {sessions:,}  rollup rows: {rollup_rows:,}")

    sid = client.command(
        f"SELECT session_id FROM {db}.session_list ORDER BY cityHash64(session_id) LIMIT 1"
    )
    since = client.command(f"SELECT toString(now() - INTERVAL {DAYS} DAY)")
    params = {"sid": sid, "since": since}
    print(f"{'query':<20} {'median ms':>10} {'target ms':>10}  rows  result")
    missed = 0
    for name, sql in QUERIES.items():
        ms, rows = time_query(client, sql.format(db=db), params, args.runs)
        ok = ms <= TARGETS_MS[name]
        missed += not ok
        print(f"{name:<20} {ms:>10.1f} {TARGETS_MS[name]:>10}  {rows:>4}  {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
