"""Migrations: idempotent apply, rendered DDL for a single node and for a cluster."""

from __future__ import annotations

import re

import pytest

from sessionlens.collector.storage import connect
from sessionlens.schema.migrate import (
    MIGRATIONS,
    SchemaOptions,
    TableEngine,
    applied_versions,
    apply,
    render,
    statements,
)

EXPORTER_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
]


def _schema_snapshot(client, database):
    names = [r[0] for r in client.query(
        f"SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name").result_rows]
    return {n: client.command(f"SHOW CREATE TABLE `{database}`.`{n}`") for n in names}


@pytest.fixture
def client(chdb_url):
    c = connect(chdb_url)
    yield c
    c.close()


def test_apply_twice_changes_nothing(client, database):
    options = SchemaOptions(database=database)
    first = apply(client, options)
    assert any("otel_traces" in s for s in first)
    before = _schema_snapshot(client, database)
    prices_before = client.command(f"SELECT count() FROM {database}.model_prices")
    second = apply(client, options)
    assert _schema_snapshot(client, database) == before
    assert applied_versions(client, options) == [v for v, _, _ in MIGRATIONS]
    # only the bootstrap IF NOT EXISTS checks ran, no migration and no second price seed
    assert len(second) == 2
    assert client.command(f"SELECT count() FROM {database}.model_prices") == prices_before > 40


def test_otel_traces_is_the_clickhouseexporter_table(client, database):
    apply(client, SchemaOptions(database=database))
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} "
        "AND table = 'otel_traces' AND default_kind = '' ORDER BY position",
        parameters={"d": database},
    ).result_rows
    assert [tuple(r) for r in rows] == EXPORTER_COLUMNS
    create = client.command(f"SHOW CREATE TABLE {database}.otel_traces")
    assert "PARTITION BY toDate(Timestamp)" in create
    assert "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)" in create
    assert "non_replicated_deduplication_window = 10000" in create
    for name in ("otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv"):
        assert client.command(f"EXISTS TABLE {database}.{name}") == 1


def test_cluster_render_puts_on_cluster_everywhere_and_replicates():
    options = SchemaOptions(
        database="obs",
        cluster_name="main",
        table_engine=TableEngine("ReplicatedMergeTree"),
        ttl=30 * 86400,
    )
    ddl = [sql for _, sql in statements(options)]
    for sql in ddl:
        assert " ON CLUSTER `main`" in sql.splitlines()[0], sql.splitlines()[0]
    engines = re.findall(r"ENGINE = (\w+)", "\n".join(ddl))
    assert engines and all(e.startswith("Replicated") for e in engines), engines
    assert "ReplicatedAggregatingMergeTree" in engines
    text = render(options)
    assert "TTL toDateTime(Timestamp) + toIntervalSecond(2592000)" in text
    # dedup setting only for plain MergeTree: Replicated engines deduplicate by default
    assert "non_replicated_deduplication_window" not in text


def test_single_node_render_runs_as_a_script(client, database):
    script = render(SchemaOptions(database=database, ttl=86400))
    for sql in script.split(";\n\n"):
        body = "\n".join(l for l in sql.splitlines() if not l.startswith("--")).strip().rstrip(";")
        if body:
            client.command(body)
    assert client.command(f"SELECT count() FROM {database}.schema_migrations") == len(MIGRATIONS)
    # a later apply sees every version as done and runs no migration
    assert len(apply(client, SchemaOptions(database=database, ttl=86400))) == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"database": "bad`name"}, {"ttl": -1}, {"inactivity_timeout": 0},
     {"cluster_name": "a`b"}],
)
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        SchemaOptions(**kwargs)


def test_table_engine_given_as_text_like_the_exporter_config():
    assert SchemaOptions(table_engine="").table_engine == TableEngine()
    engine = SchemaOptions(table_engine="ReplicatedMergeTree('/t/{table}', '{replica}')").table_engine
    assert engine.render("Replacing", "v") == "ReplicatedReplacingMergeTree('/t/{table}', '{replica}', v)"


def test_non_mergetree_engine_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="MergeTree-family"):
        TableEngine("Log")
