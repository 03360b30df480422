"""The ClickHouse exporter against embedded chDB: columns, deduplication, spool limits, replay."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from sessionlens import conventions
from sessionlens.collector import clickhouse_exporter as chx
from sessionlens.collector.component import ExportUnavailable
from sessionlens.collector.pdata import Event, Link, Span
from sessionlens.storage import connect
from sessionlens.schema import migrate

T0 = 1_763_700_000_123_456_789  # ns


def make_span(n: int, *, session: str = "s1", attrs: int = 16) -> Span:
    attributes = {f"app.attr{i}": f"value {n} {i}" for i in range(attrs - 1)}
    attributes[conventions.SESSION_ID] = session
    return Span(
        trace_id=(n // 4 + 1).to_bytes(16, "big"),
        span_id=(n + 1).to_bytes(8, "big"),
        parent_span_id=b"",
        name="chat gpt-4o",
        kind=3,
        start_time_unix_nano=T0 + n * 1000,
        end_time_unix_nano=T0 + n * 1000 + 250_000_000,
        attributes=attributes,
        resource={conventions.SERVICE_NAME: "shop"},
    )


@pytest.fixture
def client(chdb_url, database):
    """A client on the test's database, holding the schema the exporter creates at start."""
    client = connect(chdb_url, database=database)
    migrate.apply(client, migrate.SchemaOptions(database=database))
    return client


@pytest.fixture
def make_exporter(chdb_url, database, client, tmp_path):
    """Start exporters on the test's database and (by default) one spool directory."""
    made = []

    def make(**overrides) -> chx.ClickHouseExporter:
        overrides.setdefault("spool", chx.SpoolConfig(directory=str(tmp_path / "spool")))
        config = chx.Config(
            endpoint=chdb_url, database=database, insert_interval=0.01, **overrides
        )
        exporter = chx.create(config, None)
        exporter.start(None)
        made.append(exporter)
        return exporter

    make.tmp = tmp_path
    yield make
    for exporter in made:
        exporter.shutdown()


def wait_drained(exporter: chx.ClickHouseExporter, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while exporter._spool.pending() or exporter._spool.inflight:
        assert time.monotonic() < deadline, f"spool not drained; last error: {exporter.last_error}"
        time.sleep(0.02)


def counts(client, database) -> tuple[int, int]:
    rows = client.query(f"SELECT count(), uniqExact(TraceId, SpanId) FROM {database}.otel_traces").result_rows
    return rows[0]


def assert_rollup(client, database, expected: dict[str, int]) -> None:
    """Spans per session in the schema's insert-time session rollup are ``expected``."""
    rows = client.query(
        f"SELECT SessionId, sum(Spans) FROM {database}.otel_traces_sessions GROUP BY SessionId"
    ).result_rows
    assert dict(rows) == expected


def test_every_column_as_the_clickhouseexporter_writes_it(make_exporter, client, database):
    root = make_span(0)
    child = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="execute_tool search",
        kind=1,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1_500,
        attributes={"tool": "search"},
        resource={conventions.SERVICE_NAME: "agent", "host.name": "h1"},
        scope_name="sessionlens",
        scope_version="0.1.0",
        trace_state="vendor=x",
        status_code=2,
        status_message="boom",
        events=[Event(T0 + 10, "exception", {"exception.type": "ValueError"})],
        links=[Link(bytes.fromhex("11" * 16), bytes.fromhex("22" * 8), "k=v", {"why": "retry"})],
    )
    exporter = make_exporter()
    exporter.export([root, child])
    wait_drained(exporter)
    assert exporter.database == database
    assert exporter.new_client().query(f"SELECT count() FROM {database}.otel_traces").result_rows == [(2,)]
    rows = client.query(
        f"SELECT toString(Timestamp), TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, "
        f"ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, "
        f"StatusMessage, arrayMap(t -> toString(t), Events.Timestamp), Events.Name, Events.Attributes, "
        f"Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes "
        f"FROM {database}.otel_traces ORDER BY SpanName"
    ).result_rows
    assert rows[1] == (
        "2025-11-21 04:40:00.123456789", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
        "00f067aa0ba902b7", "vendor=x", "execute_tool search", "Internal", "agent",
        {"service.name": "agent", "host.name": "h1"}, "sessionlens", "0.1.0", {"tool": "search"}, 1500,
        "Error", "boom", ["2025-11-21 04:40:00.123456799"], ["exception"], [{"exception.type": "ValueError"}],
        ["11" * 16], ["22" * 8], ["k=v"], [{"why": "retry"}],
    )
    name, kind, parent, status, duration = rows[0][5], rows[0][6], rows[0][3], rows[0][13], rows[0][12]
    assert (name, kind, parent, status, duration) == ("chat gpt-4o", "Client", "", "Unset", 250_000_000)
    assert rows[0][11][conventions.SESSION_ID] == "s1" and len(rows[0][11]) == 16


def test_span_kind_and_status_spellings():
    spans = [make_span(i) for i in range(6)]
    for i, span in enumerate(spans):
        span.kind, span.status_code = i, i % 3
    cols = chx.to_columns(spans)
    kinds, codes = cols[chx.COLUMNS.index("SpanKind")], cols[chx.COLUMNS.index("StatusCode")]
    assert kinds == ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
    assert codes == ["Unset", "Ok", "Error"] * 2


def test_retried_export_is_not_counted_twice(make_exporter, client, database):
    exporter = make_exporter()
    batch = [make_span(i, session="s1" if i % 2 else "s2") for i in range(100)]
    exporter.export(batch)
    exporter.export(batch)  # the client lost the ack and retries
    exporter.export(batch[:10] + [make_span(100, session="s1"), make_span(100, session="s1")])
    wait_drained(exporter)
    assert counts(client, database) == (101, 101)
    assert_rollup(client, database, {"s1": 51, "s2": 50})


def tenant_spans(project: str, n: int = 20) -> list[Span]:
    spans = [make_span(i) for i in range(n)]
    resource = {conventions.SERVICE_NAME: "shop", conventions.PROJECT: project}
    for span in spans:
        span.resource = resource
    return spans


def per_project(client, database) -> dict:
    rows = client.query(
        f"SELECT Project, count(), uniqExact(TraceId, SpanId) FROM {database}.otel_traces GROUP BY Project"
    ).result_rows
    return {project: (n, unique) for project, n, unique in rows}


def test_another_project_reusing_span_ids_is_another_span(make_exporter, client, database):
    exporter = make_exporter()
    exporter.export(tenant_spans("team-a"))
    exporter.export(tenant_spans("team-b"))  # the same trace and span ids, another tenant
    exporter.export(tenant_spans("team-a")[:5])  # a retry is still a retry
    wait_drained(exporter)
    assert per_project(client, database) == {"team-a": (20, 20), "team-b": (20, 20)}


def test_spooled_span_keys_keep_their_project_across_a_restart(make_exporter, client, database):
    rename_table_away(client, database)
    first = make_exporter(timeout=0.1, create_schema=False)
    first.export(tenant_spans("team-a"))
    first.shutdown()  # the spans stay in the spool
    bring_table_back(client, database)
    second = make_exporter()
    second.export(tenant_spans("team-a"))  # the client retries: dropped
    second.export(tenant_spans("team-b"))  # another tenant: kept
    wait_drained(second)
    assert per_project(client, database) == {"team-a": (20, 20), "team-b": (20, 20)}


def rename_table_away(client, database) -> None:
    """ClickHouse loses the table: every insert fails until it is back."""
    client.command(f"RENAME TABLE {database}.otel_traces TO {database}.otel_traces_away")


def bring_table_back(client, database) -> None:
    client.command(f"RENAME TABLE {database}.otel_traces_away TO {database}.otel_traces")


def test_replayed_block_adds_nothing_to_table_or_rollup(make_exporter, client, database, tmp_path):
    """A crash after an insert but before its commit: the next process repeats the same block."""
    rename_table_away(client, database)
    stuck = make_exporter(timeout=0.2, create_schema=False)  # apply would recreate the table
    stuck.export([make_span(i, session="s1" if i % 2 else "s2") for i in range(50)])
    deadline = time.monotonic() + 10
    while stuck._spool.inflight is None:  # the insert was begun and failed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stuck.shutdown()
    crash_image = tmp_path / "crash-image"
    shutil.copytree(tmp_path / "spool", crash_image)  # the disk as a crash would leave it

    bring_table_back(client, database)
    wait_drained(make_exporter())  # inserts and commits the block
    assert counts(client, database) == (50, 50)

    replay = make_exporter(spool=chx.SpoolConfig(directory=str(crash_image)))
    wait_drained(replay)  # inserts the same block again, with the same token
    assert counts(client, database) == (50, 50)
    assert_rollup(client, database, {"s1": 25, "s2": 25})


def test_storage_away_fills_the_spool_then_drains_in_order(make_exporter, client, database):
    exporter = make_exporter(spool=chx.SpoolConfig(directory=str(make_exporter.tmp / "small"), max_size_mib=1),
                             insert_max_spans=100)
    # One row per insert: when, and its first span (span ids count up from 1 across batches).
    client.command(f"CREATE TABLE {database}.insert_log (at DateTime64(9), first_span UInt64, spans UInt64) "
                   f"ENGINE = MergeTree ORDER BY at")
    client.command(f"CREATE MATERIALIZED VIEW {database}.insert_log_mv TO {database}.insert_log AS "
                   f"SELECT now64(9) AS at, min(reinterpretAsUInt64(reverse(unhex(SpanId)))) AS first_span, "
                   f"count() AS spans FROM {database}.otel_traces")
    exporter.export([make_span(i) for i in range(100)])
    wait_drained(exporter)
    rename_table_away(client, database)  # mid-load: ClickHouse goes away

    acked: list[int] = []
    batch = 1
    with pytest.raises(ExportUnavailable, match="spool .* is full") as info:
        while True:
            exporter.export([make_span(batch * 100 + i) for i in range(100)])
            acked.append(batch)
            batch += 1
    assert info.value.retry_after > 0
    assert len(acked) >= 5 and exporter.last_error  # the spool held what ClickHouse could not take
    assert counts_away(client, database) == 100

    bring_table_back(client, database)
    wait_drained(exporter)
    assert counts(client, database) == (100 * (len(acked) + 1),) * 2
    # Each spool record became one insert, in the order the batches were acknowledged.
    order = client.query(f"SELECT intDiv(first_span - 1, 100), spans FROM {database}.insert_log ORDER BY at").result_rows
    assert order == [(b, 100) for b in [0, *acked]]

    exporter.export([make_span(batch * 100 + i) for i in range(100)])  # the refused batch, retried
    wait_drained(exporter)
    assert counts(client, database) == (100 * (len(acked) + 2),) * 2


def test_restart_drains_what_a_previous_process_left(make_exporter, client, database):
    rename_table_away(client, database)
    first = make_exporter(timeout=0.1, create_schema=False)  # apply would recreate the table
    first.export([make_span(i) for i in range(30)])
    first.shutdown()
    assert counts_away(client, database) == 0
    bring_table_back(client, database)
    second = make_exporter()
    wait_drained(second)
    assert counts(client, database) == (30, 30)
    second.export([make_span(i) for i in range(30)])  # a client retrying spans the old process spooled
    wait_drained(second)
    assert counts(client, database) == (30, 30)


def counts_away(client, database) -> int:
    return client.query(f"SELECT count() FROM {database}.otel_traces_away").result_rows[0][0]


def test_export_after_shutdown_is_unavailable(make_exporter):
    exporter = make_exporter()
    exporter.shutdown()
    with pytest.raises(ExportUnavailable, match="not running"):
        exporter.export([make_span(0)])


@pytest.mark.parametrize("bad", [{"insert_max_spans": 0}, {"spool": chx.SpoolConfig(max_size_mib=0)}])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        chx.create(chx.Config(**bad), None)


# A process that acknowledges batches on stdout ("load"), or drains the spool and reports
# how often each span id is stored ("drain"); each on its own embedded store.
CRASH_CHILD = r"""
import json, sys
from sessionlens.collector import clickhouse_exporter as chx
from sessionlens.collector.pdata import Span

url, spool_dir, mode = sys.argv[1:4]
config = chx.Config(endpoint=url, spool=chx.SpoolConfig(directory=spool_dir), insert_interval=0.0,
                    insert_max_spans=600, timeout=60.0)
left = 0
if mode == "drain":  # what the killed process left in the spool
    from sessionlens.collector.spool import Spool
    spool = Spool(spool_dir, 1 << 30)
    left = sum(items for _, items in spool.pending())
    spool.close()
exporter = chx.create(config, None)
exporter.start(None)
if mode == "load":
    batch = 0
    while True:
        exporter.export([
            Span(trace_id=(n // 4 + 1).to_bytes(16, "big"), span_id=(n + 1).to_bytes(8, "big"),
                 parent_span_id=b"", name="chat", kind=3, start_time_unix_nano=10**18 + n,
                 end_time_unix_nano=10**18 + n + 1000, attributes={"session.id": f"s{batch % 7}"},
                 resource={"service.name": "crash"})
            for n in range(batch * 200, batch * 200 + 200)
        ])
        print(batch, flush=True)  # acknowledged
        batch += 1
exporter.shutdown()  # drains everything within the timeout
rows = exporter.new_client().query(
    "SELECT reinterpretAsUInt64(reverse(unhex(SpanId))) - 1, count() FROM otel.otel_traces GROUP BY SpanId"
).result_rows
print(json.dumps({"left": left, "pending": len(exporter._spool.pending()), "counts": rows}))
"""


def test_kill_9_loses_no_acknowledged_span_and_doubles_none(tmp_path):
    url, spool = f"chdb://{tmp_path / 'store'}", str(tmp_path / "spool")
    load = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, url, spool, "load"], stdout=subprocess.PIPE, text=True
    )
    acked: list[int] = []
    try:
        for line in load.stdout:
            acked.append(int(line))
            if len(acked) >= 60:
                break
    finally:
        load.send_signal(signal.SIGKILL)  # mid-load: appends, inserts and commits are all in flight
        rest, _ = load.communicate(timeout=30)
    acked += [int(line) for line in rest.splitlines() if line.strip().isdigit()]
    assert len(acked) >= 60, "the loader died before acknowledging anything"

    drain = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, url, spool, "drain"], capture_output=True, text=True, timeout=120
    )
    assert drain.returncode == 0, drain.stderr
    report = json.loads(drain.stdout.splitlines()[-1])
    stored = dict(report["counts"])
    assert report["pending"] == 0
    assert report["left"] > 0, "the kill found nothing in the spool: nothing was replayed"
    assert all(times == 1 for times in stored.values()), "a span was stored twice"
    missing = [n for b in acked for n in range(b * 200, b * 200 + 200) if n not in stored]
    assert missing == [], f"{len(missing)} acknowledged spans lost"
