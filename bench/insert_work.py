"""Where the engine's insert and merge CPU goes, piece by piece of the schema.

    python bench/insert_work.py [--spans 200_000 --batch 16384 --rounds 3 --against N]

Inserts the same realistic LLM spans (those of ``bench/exporter.py``, column batches as the
exporter sends them, with its deduplication settings) into scratch databases of one
embedded store: today's schema whole; today's with each piece of migration 8 put back as
before (ZSTD(1) codecs, wide parts from 10 MiB); today's with one piece taken away at a
time (each materialized view, the skip indexes, the rollup's sumMap states), today's with
an insert setting of the exporter's changed, down to a bare clickhouseexporter table
(its columns only: no session columns, indexes or views) — and, with ``--against N``, a
store migrated only up to migration N. Variants run in turn, ``--rounds`` times in
alternating order, so each sees the same machine; medians are printed (and the range of
the sum over the rounds: on a shared machine, a difference inside it is noise). Per variant, in
µs of CPU per span (per-thread CPU from ``/proc/self/task/*/schedstat``; the engine runs in
this process):

- ``insert``: the inserting thread (chDB's query runs on it), the INSERT's whole work:
  materialized columns, every view's SELECT, sorting, skip indexes, compression, writes;
- ``bg``: every other thread from the first insert until background merges settle
  (``MergeMutate`` merging the parts the inserts wrote, the engine's pools, the insert's
  own helper threads: without materialized views the INSERT runs on several); ``sum`` is
  the two, the engine's whole bill for the spans;
- ``pass``: one ``OPTIMIZE … FINAL`` of each table, i.e. one rewrite of every row it holds,
  per table: in steady state each row is rewritten about log(parts) times, so this is the
  unit each table adds to the merge bill;
- ``parts`` written by the inserts (all tables) and the bytes each table keeps on disk.

Then per table, for today's schema (and migration N's): rows, bytes on disk, merge pass;
and what reading otel_traces directly costs once merges settle (``READS``: Grafana-like
queries, median CPU ms), the other side of its parts' layout and codecs.
The machine may be shared: compare variants within one run (the ratio column), not across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from exporter import llm_span  # bench/exporter.py: the realistic span of the exporter bench

from sessionlens.collector import clickhouse_exporter as chx
from sessionlens.storage import connect
from sessionlens.schema.migrate import MIGRATIONS, SchemaOptions, apply

VIEWS = {  # each materialized view of otel_traces and the table it writes
    "session_spans": "otel_traces_session_spans_mv",
    "sessions": "otel_traces_sessions_mv",
    "trace_id_ts": "otel_traces_trace_id_ts_mv",
}


def thread_cpu() -> dict[int, tuple[str, int]]:
    """Per thread of this process: (its name, CPU ns so far)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended
        out[int(tid)] = (name, ns)
    return out


def spent(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]],
          own: bool) -> float:
    """CPU seconds between two snapshots, of this thread (``own``) or of all the others."""
    me = threading.get_native_id()
    return sum(ns - before.get(tid, (name, 0))[1] for tid, (name, ns) in after.items()
               if (tid == me) == own) / 1e9


def by_name(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> dict[str, float]:
    """CPU seconds of the other threads between two snapshots, by thread name."""
    me, out = threading.get_native_id(), {}
    for tid, (name, ns) in after.items():
        if tid != me:
            out[name] = out.get(name, 0.0) + (ns - before.get(tid, (name, 0))[1]) / 1e9
    return out


def settle(client, db: str, quiet_s: float = 1.5, timeout_s: float = 300) -> None:
    """Wait until no merge of ``db`` has run for ``quiet_s`` (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if client.command(f"SELECT count() FROM system.merges WHERE database = '{db}'"):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.1)


def tables(client, db: str) -> list[str]:
    return [r[0] for r in client.query(
        f"SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree' "
        f"AND name LIKE 'otel_traces%' ORDER BY name").result_rows]


# Each variant: how its scratch database is made from an empty one.
def today(client, db: str) -> None:
    apply(client, SchemaOptions(database=db))


def migrated_to(version: int) -> Callable:
    def make(client, db: str) -> None:
        apply(client, SchemaOptions(database=db), until=version)
    return make


def without_views(*names: str) -> Callable:
    def make(client, db: str) -> None:
        today(client, db)
        for name in names:
            client.command(f"DROP VIEW {db}.{VIEWS[name]}")
    return make


def without_indexes(*names: str, views: tuple[str, ...] = ()) -> Callable:
    """Today's schema less the named skip indexes of otel_traces (none named: all)."""
    def make(client, db: str) -> None:
        without_views(*views)(client, db)
        for table, name in client.query(
                f"SELECT table, name FROM system.data_skipping_indices WHERE database = '{db}'").result_rows:
            if not names or name in names:
                client.command(f"ALTER TABLE {db}.{table} DROP INDEX {name}")
    return make


def recoded(table: str, old: str, new: str) -> Callable:
    """Today's schema with codec ``new`` where ``table``'s stored columns have ``old``."""
    def make(client, db: str) -> None:
        today(client, db)
        for column, codec in client.query(
                f"SELECT name, compression_codec FROM system.columns WHERE database = '{db}' "
                f"AND table = '{table}' AND compression_codec LIKE '%{old}%' "
                f"AND default_kind IN ('', 'MATERIALIZED')").result_rows:
            if "." in column:
                continue  # Nested subcolumns (Events, Links): as migration 8, left alone
            client.command(f"ALTER TABLE {db}.{table} MODIFY COLUMN `{column}` {codec.replace(old, new)}")
    return make


def wide_from(size: int, *table_names: str) -> Callable:
    """Today's schema with the named tables writing wide parts from ``size`` bytes on."""
    def make(client, db: str) -> None:
        today(client, db)
        for table in table_names:
            client.command(f"ALTER TABLE {db}.{table} MODIFY SETTING min_bytes_for_wide_part = {size}")
    return make


def rollup_without_summaps(client, db: str) -> None:
    """Today's schema, the session rollup's view without its two sumMap states (Models,
    TokensToPrice): not a schema anyone could use (views read both), the price of those
    two states, which a plain-sums table of their own could replace."""
    today(client, db)
    view = [sql for m in MIGRATIONS for sql in m.statements(SchemaOptions(database=db))
            if re.match(r"CREATE OR REPLACE MATERIALIZED VIEW `[^`]+`\.`otel_traces_sessions_mv`", sql)][-1]
    lighter = re.sub(r"\n    sumMapIf\(\(\n.*?\) AS Models,", "", view, count=1, flags=re.DOTALL)
    lighter = re.sub(r",\n    sumMapIf\(\(\[\(toString\(Provider\).*? AS TokensToPrice", "", lighter,
                     count=1, flags=re.DOTALL)
    assert "AS Models" not in lighter and "AS TokensToPrice" not in lighter, "the rollup's view changed"
    client.command(lighter)


def bare(client, db: str) -> None:
    """The clickhouseexporter's table alone: its columns, its order key, nothing else."""
    today(client, db)
    columns = client.query(
        f"SELECT name, type, compression_codec FROM system.columns WHERE database = '{db}' "
        f"AND table = 'otel_traces' AND default_kind = '' ORDER BY position").result_rows
    for view in VIEWS.values():
        client.command(f"DROP VIEW {db}.{view}")
    client.command(f"DROP TABLE {db}.otel_traces SYNC")
    body = ", ".join(f"`{n}` {t} {c}" for n, t, c in columns)
    client.command(f"CREATE TABLE {db}.otel_traces ({body}) ENGINE = MergeTree "
                   f"PARTITION BY toDate(Timestamp) ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)")


def variants(against: int | None) -> dict[str, Callable]:
    out = {f"today (migration {MIGRATIONS[-1].version})": today}
    if against:
        out[f"migration {against}"] = migrated_to(against)
    out |= {
        # migration 8's pieces, each put back as migration 7 had it
        "ZSTD(1) otel_traces": recoded("otel_traces", "LZ4", "ZSTD(1)"),
        "wide parts from 10 MiB": wide_from(10 * 2**20, "otel_traces"),
        # what is left, one piece at a time
        "- session_spans view": without_views("session_spans"),
        "- sessions view": without_views("sessions"),
        "- trace_id_ts view": without_views("trace_id_ts"),
        "- idx_session_id": without_indexes("idx_session_id"),
        "- 4 attribute blooms": without_indexes("idx_res_attr_key", "idx_res_attr_value",
                                                "idx_span_attr_key", "idx_span_attr_value"),
        "- every skip index": without_indexes(),
        "- rollup's 2 sumMaps": rollup_without_summaps,
        "optimize_on_insert = 0": today,
        "LZ4 session_spans": recoded("otel_traces_session_spans", "ZSTD(1)", "LZ4"),
        "no views": without_views(*VIEWS),
        "no views or indexes": without_indexes(views=tuple(VIEWS)),
        "bare exporter table": bare,
    }
    return out


# Reads straight from otel_traces, as Grafana's panels and trace views make them: what the
# parts' layout and codecs cost the other way (the session views read the rollups instead).
READS = {
    "cost by model": (
        "SELECT if(Model = '', '(none)', Model) AS model, countIf(ResendCount = 0), sum(InputTokens), "
        "sum(OutputTokens), sum(CostUsd) AS cost FROM {db}.otel_traces WHERE IsLlmCall "
        "GROUP BY model ORDER BY cost DESC LIMIT 20"),
    "trace by id": "SELECT * FROM {db}.otel_traces WHERE TraceId = {{trace:String}}",
    "attribute =": "SELECT count() FROM {db}.otel_traces WHERE SpanAttributes['user.id'] = {{user:String}}",
}


def reads(client, db: str, runs: int = 5) -> dict[str, float]:
    """Per query of ``READS``, the median CPU ms of this process over ``runs`` runs."""
    traces = [r[0] for r in client.query(
        f"SELECT TraceId FROM {db}.otel_traces ORDER BY cityHash64(TraceId) LIMIT {runs}").result_rows]
    out = {}
    for name, sql in READS.items():
        times = []
        for n in range(runs + 1):
            c0 = time.process_time()
            client.query(sql.format(db=db), parameters={"trace": traces[n % runs], "user": f"user-{7 * n}"})
            times.append((time.process_time() - c0) * 1e3)
        out[name] = statistics.median(times[1:])  # the first run warms the caches
    return out


# Variants that change how the exporter inserts rather than the schema: their settings.
INSERT_SETTINGS = {
    # The rollup's view already gives one row per session of each insert, which the
    # AggregatingMergeTree would merge again inside the block (states rebuilt, merged,
    # written): nothing stored changes without it (views aggregate whatever merges left).
    "optimize_on_insert = 0": {"optimize_on_insert": 0},
}


def run(client, make: Callable, batches: list, spans: int, read: bool = False,
        settings: dict | None = None) -> dict:
    """One variant once: insert, let merges settle, one merge pass per table; CPU per span."""
    db = "bench_insert_work"
    client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    make(client, db)
    written = client.command("SELECT value FROM system.events WHERE event = 'MergeTreeDataWriterBlocks'")
    t0 = thread_cpu()
    for i, columns in enumerate(batches):
        client.insert(table="otel_traces", database=db, data=columns, column_names=chx.COLUMNS,
                      column_oriented=True, settings={
                          "insert_deduplication_token": f"bench-{i}",
                          "deduplicate_blocks_in_dependent_materialized_views": 1,
                          "async_insert": 0,
                          **(settings or {}),
                      })
    t1 = thread_cpu()
    parts = client.command("SELECT value FROM system.events WHERE event = 'MergeTreeDataWriterBlocks'") - written
    settle(client, db)
    t2 = thread_cpu()
    read_ms = reads(client, db) if read else {}
    per_table = {}
    for table in tables(client, db):
        rows, size = client.query(
            f"SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '{db}' "
            f"AND table = '{table}' AND active").result_rows[0]
        before = thread_cpu()
        client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
        after = thread_cpu()
        per_table[table] = {"rows": rows, "bytes": size,
                            "pass": (spent(before, after, True) + spent(before, after, False)) / spans * 1e6}
    client.command(f"DROP DATABASE {db} SYNC")
    return {
        "insert": spent(t0, t1, True) / spans * 1e6,
        "bg": (spent(t0, t1, False) + spent(t1, t2, False)) / spans * 1e6,
        "bg_threads": {k: v / spans * 1e6 for k, v in by_name(t0, t2).items()},
        "pass": sum(t["pass"] for t in per_table.values()),
        "parts": parts,
        "bytes": sum(t["bytes"] for t in per_table.values()),
        "tables": per_table,
        "reads": read_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=lambda v: int(v.replace("_", "")), default=200_000)
    parser.add_argument("--batch", type=int, default=16_384, help="spans per insert (the exporter's insert_max_spans)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=int, metavar="N", help="also a store migrated only up to N")
    parser.add_argument("--only", help="comma-separated variant names to run (default: all)")
    args = parser.parse_args(argv)

    client = connect("chdb://" + tempfile.mkdtemp(prefix="sessionlens-bench-"))
    rows = [llm_span(n) for n in range(args.spans)]
    batches = [chx.to_columns(rows[i:i + args.batch]) for i in range(0, args.spans, args.batch)]
    del rows
    chosen = variants(args.against)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",") or k.startswith("today")}
    run(client, today, batches[:1], args.batch)  # warm-up: the engine's JIT and caches
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    for r in range(args.rounds):
        for name, make in (list(chosen.items()) if r % 2 == 0 else reversed(list(chosen.items()))):
            print(f"  round {r + 1}: {name}", file=sys.stderr, end="\033[K\r")
            results[name].append(run(client, make, batches, args.spans,
                                     read=name.startswith(("today", "migration")),
                                     settings=INSERT_SETTINGS.get(name)))
    print(file=sys.stderr)
    print(f"{args.spans:,} spans in {len(batches)} inserts of {args.batch:,}; median of {args.rounds} rounds "
          f"(alternated); µs of CPU per span; 'x today' = insert+bg against today's schema")
    print(f"{'variant':<24} {'insert':>7} {'bg':>6} {'sum':>6} {'(range)':>11} {'x today':>7} {'pass':>6} "
          f"{'parts':>5} {'MiB':>6}  bg threads")
    med = lambda name, key: statistics.median(r[key] for r in results[name])  # noqa: E731
    base = None
    for name in chosen:
        total = med(name, "insert") + med(name, "bg")
        base = base or total
        threads = {}
        for r in results[name]:
            for k, v in r["bg_threads"].items():
                threads.setdefault(k, []).append(v)
        top = sorted(((statistics.median(v), k) for k, v in threads.items()), reverse=True)[:3]
        sums = [r["insert"] + r["bg"] for r in results[name]]
        spread = f"({min(sums):.1f}-{max(sums):.1f})"
        print(f"{name:<24} {med(name, 'insert'):>7.1f} {med(name, 'bg'):>6.1f} {total:>6.1f} {spread:>11} "
              f"{total / base:>7.2f} "
              f"{med(name, 'pass'):>6.1f} {med(name, 'parts'):>5.0f} {med(name, 'bytes') / 2**20:>6.1f}  "
              + " ".join(f"{k} {v:.1f}" for v, k in top))
    for name in [n for n in chosen if n.startswith(("today", "migration"))]:
        print(f"per table, {name}: rows, MiB on disk, one merge pass (µs/span)")
        for table in results[name][0]["tables"]:
            cells = [r["tables"][table] for r in results[name]]
            print(f"  {table:<28} {statistics.median(c['rows'] for c in cells):>9,.0f} "
                  f"{statistics.median(c['bytes'] for c in cells) / 2**20:>6.1f} "
                  f"{statistics.median(c['pass'] for c in cells):>6.1f}")
        print("  reads of otel_traces once merges settle, median CPU ms: " + "  ".join(
            f"{q} {statistics.median(r['reads'][q] for r in results[name]):.1f}" for q in READS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
