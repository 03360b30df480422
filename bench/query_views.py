"""Time the session views at scale on embedded storage.

    python bench/query_views.py [--spans 10_000_000 --sessions 100_000 --path DIR --runs 7]
                                [--against N]

Loads synthetic LLM spans (~16 span attributes, agent spans wrapping chat calls, several
models, errors) into ``otel_traces`` with INSERT … SELECT — through the same materialized
views as real inserts — twice, and prints one line per load with the median time of a
session_list page (unfiltered and filtered by user), a session_detail (a different session
each run) and 30-day session_vitals against the targets (``TARGETS_MS``), then a session_breakdown
and one agent's 30-day vitals. A last line gives the
insert rate of realistic spans (those of ``bench/exporter.py``, column batches as the
exporter sends them) through all materialized views, so a schema change shows its cost:

- ``time-local``: what a real store looks like. A conversation's spans arrive over minutes,
  so each insert (1M spans, in time order) holds whole sessions, and the store then gets
  its background merges (we wait until they settle).
- ``round-robin``: the worst case. Every 1M-span insert touches every session and merges
  of the session tables are stopped, so every read re-aggregates ~10 rows per session.

``--against N`` measures a schema change side by side in the same run: after each load's
line, the same queries through migration N's views (created in a side database over the
same tables, timed alternately with today's), and the insert rate of a store migrated only
up to N beside today's (alternated, two rounds each). A reused store is migrated to today's
schema first.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time

from exporter import llm_span  # bench/exporter.py: the realistic span of the exporter bench

from sessionlens.collector import clickhouse_exporter as chx
from sessionlens.storage import connect
from sessionlens.schema.migrate import MIGRATIONS, SchemaOptions, apply

DAYS = 30
SPANS_PER_TRACE = 5  # one invoke_agent span, four chat calls
CHUNK = 1_000_000
SESSION_TABLES = ("otel_traces_sessions", "otel_traces_session_spans")
TARGETS_MS = {"list page": 300, "list user=": 300, "detail": 50, "vitals 30d": 500,
              # no target of their own: held to the targets of their nearest kin
              "breakdown": 50, "vitals agent=": 500}

# How span n maps to its session s, its index k within the session, the session's start
# (ms after the window start) and the row order of each insert.
LOADS = {
    "time-local": {
        "session": "intDiv(n, {spans_per_session})",
        "index": "n % {spans_per_session}",
        "start_ms": "intDiv(s * ({days} * 86400 - 600) * 1000, {sessions}) + cityHash64(s) % 20000",
        "order": "ORDER BY Timestamp",
    },
    "round-robin": {
        "session": "n % {sessions}",
        "index": "intDiv(n, {sessions})",
        "start_ms": "cityHash64(s) % ({days} * 86400 - 600) * 1000",
        "order": "",
    },
}

GENERATE = """
INSERT INTO {db}.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage)
SELECT
    now64(9) - toIntervalSecond({days} * 86400) + toIntervalMillisecond({start_ms} + k * 3000)
        AS Timestamp,
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
    SELECT number AS n, {session} AS s, {index} AS k,
        k % {per_trace} = 0 AS agent_span,
        ['gpt-4o', 'gpt-4o-mini-2024-07-18', 'claude-3-5-sonnet-20241022', 'gemini-2.5-flash',
         'in-house-model'][1 + cityHash64(s, k) % 5] AS model,
        ['chatbot', 'support-agent', 'batch'][1 + s % 3] AS service
    FROM numbers({start}, {count})
)
{order}
"""


QUERIES = {
    "list page": (
        "SELECT * FROM {db}.session_list_page(project = '', user = '', environment = '', "
        "status = '', before = '', limit = 50)"
    ),
    "list user=": (
        "SELECT * FROM {db}.session_list_page(project = '', user = {{user:String}}, "
        "environment = '', status = '', before = '', limit = 50)"
    ),
    "detail": "SELECT * FROM {db}.session_detail(session_id = {{sid:String}}, project = {{project:String}})",
    "vitals 30d": (
        "SELECT * FROM {db}.session_vitals(since = {{since:String}}, until = '', project = '', "
        "environment = '', service = '', agent = '', user = '')"
    ),
    "breakdown": "SELECT * FROM {db}.session_breakdown(session_id = {{sid:String}}, project = {{project:String}})",
    "vitals agent=": (
        "SELECT * FROM {db}.session_vitals(since = {{since:String}}, until = '', project = '', "
        "environment = '', service = '', agent = 'agent-3', user = '')"
    ),
}


def load(client, db: str, spans: int, sessions: int, mode: str) -> float:
    """Insert the synthetic spans the way ``mode`` says; return the spans per second."""
    spec = LOADS[mode]
    shape = {"days": DAYS, "sessions": sessions, "spans_per_session": -(-spans // sessions)}
    session, index, start_ms = (spec[k].format(**shape) for k in ("session", "index", "start_ms"))
    started = time.perf_counter()
    for start in range(0, spans, CHUNK):
        count = min(CHUNK, spans - start)
        client.command(
            GENERATE.format(
                db=db, per_trace=SPANS_PER_TRACE, session=session, index=index,
                start_ms=start_ms, order=spec["order"], start=start, count=count, **shape,
            )
        )
        print(f"  {mode}: loaded {start + count:>11,} spans", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return spans / (time.perf_counter() - started)


def settle_merges(client, db: str, timeout_s: float = 300) -> None:
    """Wait until background merges in ``db`` stop (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not client.command(f"SELECT count() FROM system.merges WHERE database = '{db}'"):
            time.sleep(5)  # a merge may be about to be scheduled
            if not client.command(f"SELECT count() FROM system.merges WHERE database = '{db}'"):
                return
        time.sleep(1)


def prepare(client, db: str, spans: int, sessions: int, mode: str) -> float | None:
    """Load ``db`` unless it already holds ``spans``; the load rate, or None when reused.

    Reusing a round-robin store needs this process to stop its merges again (the flag
    does not outlive the process), and honest figures need a store reloaded since.
    """
    reuse = client.command(f"EXISTS TABLE {db}.otel_traces") and client.command(
        f"SELECT count() FROM {db}.otel_traces") == spans
    if not reuse:
        client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    apply(client, SchemaOptions(database=db))  # a reused store gets today's migrations
    if mode == "round-robin":
        for table in SESSION_TABLES:
            client.command(f"SYSTEM STOP MERGES {db}.{table}")
    if reuse:
        return None
    return load(client, db, spans, sessions, mode)


def time_queries(client, sqls: list[str], params: list[dict]) -> list[tuple[float, float]]:
    """Per SQL, the median wall and CPU time (all of this process's threads: the engine
    runs in it) in ms over one run per parameter set, after one warm-up; with several SQLs,
    each parameter set runs them one after the other, first one first, then last one first
    (the later run of a set finds its session's data warm)."""
    for sql in sqls:
        client.query(sql, parameters=params[0])
    times: list[list[tuple[float, float]]] = [[] for _ in sqls]
    for n, p in enumerate(params):
        pairs = list(zip(sqls, times))
        for sql, out in pairs if n % 2 == 0 else reversed(pairs):
            t0, c0 = time.perf_counter(), time.process_time()
            client.query(sql, parameters=p)
            out.append(((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000))
    return [tuple(statistics.median(x[i] for x in t) for i in (0, 1)) for t in times]


_VIEW = r"CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?`{db}`\.`({names})`"


def old_views(client, db: str, version: int) -> str:
    """A side database holding migration ``version``'s session views over ``db``'s tables."""
    side = f"{db}_m{version}"
    client.command(f"DROP DATABASE IF EXISTS {side} SYNC")
    client.command(f"CREATE DATABASE {side}")
    names = {re.search(r"\}\.(\w+)\(", sql).group(1) for sql in QUERIES.values()}
    view = re.compile(_VIEW.format(db=db, names="|".join(names)))
    latest = {}  # the last CREATE of each view up to ``version``
    for migration in MIGRATIONS[:version]:
        for sql in migration.statements(SchemaOptions(database=db)):
            if match := view.match(sql):
                latest[match.group(1)] = sql
    for name, sql in latest.items():
        client.command(sql.replace(f"`{db}`.`{name}`", f"`{side}`.`{name}`", 1))
    return side


def measure(client, db: str, runs: int, against: str | None = None) -> list[dict[str, tuple[float, float]]]:
    """Per query, its median (wall, CPU) ms through ``db``'s views (and ``against``'s)."""
    picks = client.query(
        f"SELECT SessionId, argMaxMerge(UserState), Project FROM {db}.otel_traces_sessions "
        f"GROUP BY Project, SessionId ORDER BY cityHash64(SessionId) LIMIT {runs}"
    ).result_rows
    since = client.command(f"SELECT toString(now() - INTERVAL {DAYS} DAY)")
    params = [{"sid": sid, "user": user, "project": project, "since": since} for sid, user, project in picks]
    dbs = [db] + ([against] if against else [])
    got = {name: time_queries(client, [sql.format(db=d) for d in dbs], params) for name, sql in QUERIES.items()}
    return [{name: ms[i] for name, ms in got.items()} for i in range(len(dbs))]


def insert_rate(client, spans: int = 200_000, batch: int = 16_384,
                until: int | None = None) -> tuple[float, float]:
    """Spans per second (wall, and per CPU second of this process) of realistic spans
    inserted into a fresh schema (migrated up to ``until``; default: all) the way the
    exporter inserts them."""
    db = "bench_insert"
    client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    apply(client, SchemaOptions(database=db), until=until)
    rows = [llm_span(n) for n in range(spans)]
    batches = [chx.to_columns(rows[i:i + batch]) for i in range(0, spans, batch)]
    wall, cpu = time.perf_counter(), time.process_time()
    for i, columns in enumerate(batches):
        client.insert(table="otel_traces", database=db, data=columns, column_names=chx.COLUMNS,
                      column_oriented=True, settings={
                          # as the exporter: one block per batch, deduplicated in the views too
                          "insert_deduplication_token": f"bench-{i}",
                          "deduplicate_blocks_in_dependent_materialized_views": 1,
                      })
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    client.command(f"DROP DATABASE {db} SYNC")
    return spans / wall, spans / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=lambda v: int(v.replace("_", "")), default=10_000_000)
    parser.add_argument("--sessions", type=lambda v: int(v.replace("_", "")), default=100_000)
    parser.add_argument("--path", help="embedded store directory (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query")
    parser.add_argument("--against", type=int, metavar="N",
                        help="also time migration N's views and inserts, side by side")
    args = parser.parse_args(argv)

    path = args.path or tempfile.mkdtemp(prefix="sessionlens-bench-")
    client = connect("chdb://" + path)
    print(f"{args.spans:,} spans / {args.sessions:,} sessions in {path}; "
          f"median of {args.runs} runs, ms (target)")
    header = "  ".join(f"{name} ({TARGETS_MS[name]})" for name in QUERIES)
    print(f"{'load':<12} {'spans/s':>8} {'rollup rows':>12} {'parts':>5}  {header}")
    missed = 0
    dbs = {mode: "bench_" + mode.replace("-", "_") for mode in LOADS}
    # Every store is ready before any is timed: the merges a store runs (or, reused, resumes
    # in this process) would otherwise run on the cores of the other store's queries.
    rates = {mode: prepare(client, db, args.spans, args.sessions, mode) for mode, db in dbs.items()}
    for db in dbs.values():
        settle_merges(client, db)
    for mode, db in dbs.items():
        rate = rates[mode]
        rollup_rows, parts = client.query(
            f"SELECT count(), uniqExact(_part) FROM {db}.otel_traces_sessions").result_rows[0]
        got = measure(client, db, args.runs, old_views(client, db, args.against) if args.against else None)
        for i, figures in enumerate(got):
            cells = []
            for name, (ms, _) in figures.items():
                ok = ms <= TARGETS_MS[name]
                missed += not ok and i == 0
                cells.append(f"{ms:>{len(name) + len(str(TARGETS_MS[name])) - 4}.1f} {'ok' if ok else 'MISSED'}")
            loaded = f"{rate:>8,.0f}" if rate else f"{'reused':>8}"
            label = mode if i == 0 else f"  mig. {args.against}"
            print(f"{label:<12} {loaded if i == 0 else '':>8} {rollup_rows:>12,} {parts:>5}  " + "  ".join(cells))
        if args.against:
            for i, what in enumerate(("wall", "CPU")):
                ratios = "  ".join(f"{name} {got[0][name][i] / got[1][name][i]:.2f}" for name in QUERIES)
                print(f"{'  ' + what:<12} today's / migration {args.against}'s views: {ratios}")
            print(f"{'  CPU ms':<12} " + "  ".join(
                f"{name} {got[0][name][1]:.0f} vs {got[1][name][1]:.0f}" for name in QUERIES))
    rounds = [None, args.against] * 2 if args.against else [None]
    rates = {}
    for until in rounds:  # alternated, so both see the same machine
        rates.setdefault(until, []).append(insert_rate(client, until=until))
    for until, measured in rates.items():
        wall, cpu = (statistics.median(r[i] for r in measured) for i in (0, 1))
        views = "all views" if until is None else f"migrated to {until}"
        print(f"insert of realistic spans (16k-span column batches, {views}): {wall:,.0f} spans/s, "
              f"{cpu:,.0f} spans per CPU second")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
