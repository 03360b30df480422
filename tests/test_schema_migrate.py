"""Migrations: frozen files, idempotent apply, upgrades, repairs, rendered DDL for a single
node and for a cluster."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from importlib import resources

import pytest

from sessionlens import conventions as conv
from sessionlens.storage import connect
from sessionlens.schema.migrate import (
    MIGRATIONS,
    SchemaError,
    SchemaOptions,
    TableEngine,
    applied_versions,
    apply,
    render,
    statements,
)
from sessionlens.schema.template import placeholders

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


@pytest.fixture(scope="module")
def fresh(chdb_url):
    """A database freshly migrated to the latest version, holding test_views' spans.

    Built once for the module: the tests given it only read it (a fresh install costs
    seconds of DDL, and the upgrade tests compare five upgraded stores with one).
    """
    name = "t_fresh_" + uuid.uuid4().hex[:8]
    c = connect(chdb_url)
    apply(c, SchemaOptions(database=name))
    _insert_view_spans(c, name)
    yield name
    c.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    c.close()


def test_apply_twice_changes_nothing(client, database):
    options = SchemaOptions(database=database)
    first = apply(client, options)
    assert any("otel_traces" in s for s in first)
    before = _schema_snapshot(client, database)
    prices_before = client.command(f"SELECT count() FROM {database}.model_prices")
    second = apply(client, options)
    assert _schema_snapshot(client, database) == before
    assert applied_versions(client, options) == [m.version for m in MIGRATIONS]
    # only the bootstrap IF NOT EXISTS checks ran, no migration and no second price seed
    assert len(second) == 2
    assert client.command(f"SELECT count() FROM {database}.model_prices") == prices_before > 40


def test_otel_traces_is_the_clickhouseexporter_table(client, fresh):
    database = fresh
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
        if sql.startswith(("INSERT", "TRUNCATE")):  # data: on the shard apply runs on
            continue
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
        body = "\n".join(line for line in sql.splitlines() if not line.startswith("--")).strip().rstrip(";")
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


# --- frozen migrations ------------------------------------------------------------------

RELEASED = {
    1: "86a1532eee0db66fe2725ef2166c733f9743b7052f353e6121e8f95843778538",
    2: "59183af86e890a94c6f22df38b2d7a1fe9b1a59ce2915ead57a1323a9049e083",
    3: "f48e4b958dfe2ac639d99c328c961d82211f493677acc46d43ff240af0eb4a69",
    4: "c9978f630b61ccb137bf78b8c21fabcbc5bba5dea4f1a86ffd3ea226722facca",
    5: "b78852160b2332c5cc4d5d572f84c3f414a9424d9468fd9160b3bf9ba94d8a98",
    6: "dc8f894201f10e204069a01826c4c98e9b8e6f7a9c421603fd340b33600e0657",
    7: "4ad6af57cfe5439ca1c30d33f09f1664c003579d310d1771304ab91c492ff1d5",
    8: "7fe05decc80ee22642cb10774704003f01a9cc3bb6d0746b0dcd0145069402c8",
}
"""sha256 of every released migration file. A released file is never edited: a schema
change is a new file, whose hash is added here when it lands."""


def test_released_migrations_are_frozen():
    assert [m.version for m in MIGRATIONS] == sorted(RELEASED)
    for m in MIGRATIONS:
        data = resources.files("sessionlens.schema").joinpath("migrations", m.filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == RELEASED[m.version], (
            f"{m.filename} changed: released migrations are frozen, add a new one instead")


def test_migration_files_use_only_known_placeholders():
    for m in MIGRATIONS:
        assert placeholders(m.text) <= {
            "database", "traces_table", "on_cluster", "engine", "ttl", "dedup_setting",
            "inactivity_timeout"}, m.filename
        for sql in m.statements(SchemaOptions(cluster_name="c", ttl=60)):
            assert "${" not in sql


# The attribute keys a column reads, in the order its expression tries them.
_KEY = re.compile(r"mapContains\((?:Span|Resource)Attributes, '([^']+)'\)|(?:Span|Resource)Attributes\['([^']+)'\]")


def _keys(expression: str) -> list[str]:
    found = [a or b for a, b in _KEY.findall(expression)]
    return list(dict.fromkeys(found))


def _chain(*keys: str) -> list[str]:
    return list(dict.fromkeys(k for key in keys for k in (key, *conv.ALIASES.get(key, ()))))


CONVENTION_COLUMNS = {
    "Project": [conv.PROJECT],
    "SessionId": _chain(conv.SESSION_ID),
    "SessionSource": [conv.SESSION_SOURCE, *_chain(conv.SESSION_ID)],
    "SessionName": _chain(conv.SESSION_NAME),
    "SessionPath": _chain(conv.SESSION_PATH),
    "UserId": _chain(conv.USER_ID),
    "AgentId": _chain(conv.AGENT_ID),
    "AgentName": _chain(conv.AGENT_NAME),
    "RunId": _chain(conv.RUN_ID),
    "RequestId": _chain(conv.REQUEST_ID),
    "Environment": _chain(conv.ENVIRONMENT),
    "Provider": _chain(conv.PROVIDER),
    "Operation": _chain(conv.OPERATION),
    "Model": _chain(conv.RESPONSE_MODEL, conv.REQUEST_MODEL),
    # from migration 5 the numbers read helper ALIAS columns holding the attribute text
    "InputTokensAttribute": _chain(conv.INPUT_TOKENS),
    "OutputTokensAttribute": _chain(conv.OUTPUT_TOKENS),
    "CacheReadTokensAttribute": _chain(conv.CACHE_READ_INPUT_TOKENS),
    "CostAttribute": _chain(conv.COST),
    "RequestModel": _chain(conv.REQUEST_MODEL),
    "ResendCount": [conv.HTTP_RESEND_COUNT],
    "IsHttpClient": [conv.HTTP_REQUEST_METHOD, conv.HTTP_METHOD_OLD],
    "IsPolicyEvent": [conv.FINISH_REASONS, conv.ERROR_TYPE],
}


def _convention_names() -> set[str]:
    names = {v for v in vars(conv).values() if isinstance(v, str)}
    for table in (conv.ALIASES, conv.INSTRUMENTATION_ALIASES):
        names |= set(table) | {a for aliases in table.values() for a in aliases}
    return names


def test_attribute_keys_in_the_schema_agree_with_conventions(client, fresh):
    """The frozen SQL spells attribute names out; they must still be conventions' names,
    and each session column must try exactly the key and aliases conventions lists."""
    database = fresh
    columns = dict(client.query(
        "SELECT name, default_expression FROM system.columns WHERE database = {d:String} "
        "AND table = 'otel_traces' AND default_kind != ''", parameters={"d": database}).result_rows)
    for column, keys in CONVENTION_COLUMNS.items():
        assert _keys(columns[column]) == keys, column
    for column in ("InputTokens", "OutputTokens", "CacheReadTokens", "ReportedCostUsd"):
        assert _keys(columns[column]) == [] and "Attribute" in columns[column], column
    policy = re.search(r"\[('[^]]*')\]\)", columns["IsPolicyEvent"]).group(1)
    assert set(re.findall(r"'([^']+)'", policy)) == conv.POLICY_FINISH_REASONS
    llm, agent = re.findall(r"Operation IN \(([^)]*)\)", columns["IsLlmCall"])
    assert set(re.findall(r"'([^']+)'", llm)) == conv.LLM_OPERATIONS
    assert set(re.findall(r"'([^']+)'", agent)) == conv.AGENT_OPERATIONS
    known = _convention_names()
    creates = client.query("SELECT create_table_query FROM system.tables WHERE database = {d:String}",
                           parameters={"d": database}).result_rows
    used = {k for (sql,) in creates for k in _keys(sql)}
    assert conv.FINISH_REASONS in used and conv.INPUT_MESSAGES in used
    assert used <= known, used - known


# --- upgrades and repairs ----------------------------------------------------------------


def _normalized_snapshot(client, database):
    return {name: sql.replace(database, "DB") for name, sql in _schema_snapshot(client, database).items()}


def _views_answer(client, database):
    from test_views import rows, vitals  # the view helpers and spans of tests/test_views.py

    listed = rows(client, f"SELECT * EXCEPT (status) FROM {database}.session_list ORDER BY session_id")
    detail = rows(client, f"SELECT * FROM {database}.session_detail(session_id='S_A', project='acme')")
    return listed, detail, vitals(client, database)


def _insert_view_spans(client, database):
    from test_views import COLUMNS, SPANS

    client.insert(f"{database}.otel_traces", SPANS, column_names=COLUMNS)


@pytest.mark.parametrize("version", [m.version for m in MIGRATIONS[:-1]])
def test_upgrade_from_every_released_version_equals_a_fresh_install(chdb_url, fresh, version):
    old = f"t_up{version}_old_{uuid.uuid4().hex[:8]}"
    client = connect(chdb_url)
    try:
        apply(client, SchemaOptions(database=old), until=version)
        assert applied_versions(client, SchemaOptions(database=old)) == list(range(1, version + 1))
        if version >= 2:  # spans stored before the upgrade count as a fresh store counts them
            _insert_view_spans(client, old)
        apply(client, SchemaOptions(database=old))
        if version < 2:
            _insert_view_spans(client, old)
        assert applied_versions(client, SchemaOptions(database=old)) == [m.version for m in MIGRATIONS]
        assert _normalized_snapshot(client, old) == _normalized_snapshot(client, fresh)
        assert _views_answer(client, old) == _views_answer(client, fresh)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {old} SYNC")
        client.close()


@pytest.mark.parametrize("dropped", ["otel_traces", "otel_traces_sessions", "otel_traces_sessions_mv",
                                     "otel_traces_session_spans", "session_list", "session_detail"])
def test_a_dropped_object_is_recreated_at_the_next_apply(client, database, dropped):
    options = SchemaOptions(database=database)
    apply(client, options)
    before = _schema_snapshot(client, database)
    client.command(f"DROP TABLE {database}.{dropped}")
    ran = apply(client, options)
    assert any(f"`{dropped}`" in sql.splitlines()[0] for sql in ran)
    assert _schema_snapshot(client, database) == before
    _insert_view_spans(client, database)  # the rollups are fed again through their views
    listed, detail, _ = _views_answer(client, database)
    assert {r["session_id"] for r in listed} == {"S_A", "S_B", "S_D", "tC"}
    assert len(detail) == 7


def test_collector_start_recreates_a_dropped_spans_table(chdb_url, database, tmp_path):
    """Not 'starts, acknowledges into the spool, every insert fails forever'."""
    from sessionlens.collector import clickhouse_exporter as chx
    from sessionlens.collector.pdata import Span

    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database))
    client.command(f"DROP TABLE {database}.otel_traces")
    exporter = chx.create(chx.Config(endpoint=chdb_url, database=database, insert_interval=0.01,
                                     spool=chx.SpoolConfig(directory=str(tmp_path / "spool"))), None)
    exporter.start(None)
    try:
        exporter.export([Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=b"",
                              name="chat", kind=3, start_time_unix_nano=1_700_000_000 * 10**9,
                              end_time_unix_nano=1_700_000_001 * 10**9,
                              attributes={conv.SESSION_ID: "s1"}, resource={})])
        deadline = time.monotonic() + 20
        while client.command(f"SELECT count() FROM {database}.session_list") != 1:
            assert time.monotonic() < deadline, exporter.last_error
            time.sleep(0.05)
    finally:
        exporter.shutdown()
        client.close()


def test_an_unrepairable_store_refuses_with_a_clear_message(client, database):
    apply(client, SchemaOptions(database=database))
    client.command(f"DROP TABLE {database}.otel_traces")
    # a table engine this server cannot build the table with: the CREATE itself fails
    with pytest.raises(SchemaError, match=r"lacks otel_traces and recreating them failed: "):
        apply(client, SchemaOptions(database=database, table_engine="MergeTree('bogus')"))


def test_rollup_rebuilds_select_what_their_views_select():
    """Migration 5 refills the rollups with its views' own SELECT, spelled out twice."""
    text = next(m for m in MIGRATIONS if m.version == 5).text
    for table in ("sessions", "session_spans"):
        view = re.search(rf"_{table}_mv`\$\{{on_cluster\}}\nTO [^\n]*\nAS (SELECT.*?);\n", text, re.DOTALL)
        rebuild = re.search(rf"INSERT INTO [^\n]*_{table}`\nSETTINGS insert_deduplicate = 0\n(SELECT.*?);\n",
                            text, re.DOTALL)
        assert view and rebuild and view.group(1) == rebuild.group(1), table


def test_status_follows_the_collectors_timeout_on_a_store_made_with_30m(chdb_url, database, tmp_path):
    """The collector's autosession inactivity_timeout reaches the views (one source of
    truth), also on a store first created with another timeout."""
    from collector_setup import CONFIG, wait_for

    from sessionlens.collector.config import parse
    from sessionlens.collector.pipeline import Pipeline

    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database, inactivity_timeout=1800))
    client.command(
        f"INSERT INTO {database}.otel_traces (Timestamp, TraceId, SpanId, SpanAttributes) "
        "VALUES (now64(9), 't1', 's1', {'session.id': 'recent', 'gen_ai.operation.name': 'chat'})")
    status = f"SELECT status FROM {database}.session_list WHERE session_id = 'recent'"
    assert client.command(status) == "active"
    config = CONFIG.format(port=0, url=chdb_url, database=database, spool=tmp_path / "spool")
    pipeline = Pipeline(parse(config.replace("  autosession:\n", "  autosession: {inactivity_timeout: 3s}\n")))
    pipeline.start()
    try:
        assert client.command(status) in ("active", "completed")
        wait_for(lambda: client.command(status) == "completed", timeout=15, what="status completed")
    finally:
        pipeline.shutdown()
        client.close()
