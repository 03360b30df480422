"""Prices in the schema: the genai-prices seed and its refresh, users' overrides, effective
dates, the request-model fallback, unpriced calls — and the SQL rule of the views agreeing
with the cost processor's Python rule on the same spans."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from sessionlens import conventions as c
from sessionlens.collector.pdata import Span
from sessionlens.storage import connect
from sessionlens.processors import cost
from sessionlens.schema import price_seed
from sessionlens.schema.migrate import SchemaOptions, apply
from sessionlens.schema.prices import PriceBook, cost_usd, load_price_rows

COLUMNS = ["Timestamp", "TraceId", "SpanId", "ServiceName", "SpanAttributes", "Duration"]
INSERT_PRICE = (
    "INSERT INTO {db}.model_prices (provider, model, effective_from, input_per_mtok, "
    "output_per_mtok, cached_input_per_mtok) VALUES "
)
DAY_1 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
CHANGE = date(2026, 3, 10)


def chat(session, model, inp, out, *, request="", provider="", **extra):
    a = {"session.id": session, "gen_ai.operation.name": "chat", "gen_ai.response.model": model,
         "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.output_tokens": str(out), **extra}
    if request:
        a["gen_ai.request.model"] = request
    if provider:
        a["gen_ai.provider.name"] = provider
    return a


def insert(client, db, spans):
    """``spans``: (start time, span id, attributes) written as a stock OTel Collector would."""
    client.insert(f"{db}.otel_traces", [[t, "trace-" + sid, sid, "svc", a, 1_000_000] for t, sid, a in spans],
                  column_names=COLUMNS)


def rows(client, sql, **params):
    result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, r)) for r in result.result_rows]


def reload(client, db):
    client.command(f"SYSTEM RELOAD DICTIONARY {db}.model_prices_dict")


@pytest.fixture
def store(chdb_url, database):
    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database))
    yield client, database
    client.close()


class _Host:
    def __init__(self, url, database):
        self.url, self.database = url, database

    def storage_client(self):
        return connect(self.url, database=self.database)


def test_the_seed_is_the_installed_genai_prices_and_apply_again_adds_nothing(store):
    client, db = store
    source = price_seed.seed_source()
    count = lambda: client.command(f"SELECT count() FROM {db}.model_prices WHERE seeded = 1")  # noqa: E731
    assert count() == len(price_seed.seed_rows())
    assert client.command(f"SELECT uniqExact(source) FROM {db}.model_prices") == 1
    resolved = {(r["provider"], r["model"], r["effective_from"]): r
                for r in rows(client, f"SELECT * FROM {db}.model_prices_resolved")}
    gpt = resolved[("openai", "gpt-4o", date(1970, 1, 1))]
    assert (gpt["input_per_mtok"], gpt["output_per_mtok"], gpt["cached_input_per_mtok"],
            gpt["cache_write_per_mtok"], gpt["source"]) == (2.5, 10.0, 1.25, 2.5, source)
    claude = resolved[("anthropic", "claude-3-5-sonnet", date(1970, 1, 1))]
    assert (claude["cached_input_per_mtok"], claude["cache_write_per_mtok"]) == (0.3, 3.75)
    # the package's price history, one row per start date
    flash = sorted(k[2] for k in resolved if k[:2] == ("deepseek", "deepseek-v4-flash"))
    assert flash[0] == date(1970, 1, 1) and len(flash) >= 3
    assert PriceBook(price_seed.seed_rows()) == PriceBook(
        load_price_rows(client, f"{db}.model_prices_resolved"))

    for _ in range(2):
        apply(client, SchemaOptions(database=db))
    assert count() == len(price_seed.seed_rows())


def test_a_new_package_version_replaces_the_old_seed_and_keeps_user_rows(store):
    client, db = store
    # the store as an older genai-prices left it: its seed, and a user's price
    client.command(f"ALTER TABLE {db}.model_prices UPDATE source = 'genai-prices==0.0.1/seed1' "
                   "WHERE seeded = 1 SETTINGS mutations_sync = 1")
    client.command(INSERT_PRICE.format(db=db) + "('', 'house-model', '1970-01-01', 1, 2, 0.5)")
    client.command(f"INSERT INTO {db}.model_prices (model, input_per_mtok, output_per_mtok, "
                   "cached_input_per_mtok, source, seeded) VALUES ('gone-model', 1, 1, 1, "
                   "'genai-prices==0.0.1/seed1', 1)")
    apply(client, SchemaOptions(database=db))
    client.command(f"OPTIMIZE TABLE {db}.model_prices FINAL")  # let the delete mutation finish
    sources = dict(client.query(f"SELECT source, count() FROM {db}.model_prices GROUP BY source").result_rows)
    assert sources == {price_seed.seed_source(): len(price_seed.seed_rows()), "user": 1}
    models = {r[0] for r in client.query(f"SELECT model FROM {db}.model_prices_resolved").result_rows}
    assert "house-model" in models and "gone-model" not in models


def test_a_user_insert_overrides_the_seed_whatever_the_dates(store):
    client, db = store
    insert(client, db, [(DAY_1, "s1", chat("S1", "gpt-4o", 1_000_000, 0, provider="openai"))])
    assert rows(client, f"SELECT cost_usd FROM {db}.session_list")[0]["cost_usd"] == pytest.approx(2.5)
    # a plain INSERT (provider '' = any, effective since always) wins over openai's seeded row
    client.command(f"INSERT INTO {db}.model_prices (model, input_per_mtok, output_per_mtok, "
                   "cached_input_per_mtok) VALUES ('GPT-4o', 7, 8, 1)")
    reload(client, db)
    assert rows(client, f"SELECT cost_usd FROM {db}.session_list")[0]["cost_usd"] == pytest.approx(7.0)
    # a later re-seed (newer rows) does not bring the package's price back
    client.command(f"ALTER TABLE {db}.model_prices UPDATE source = 'genai-prices==0.0.1/seed1' "
                   "WHERE seeded = 1 SETTINGS mutations_sync = 1")
    apply(client, SchemaOptions(database=db))
    reload(client, db)
    assert rows(client, f"SELECT cost_usd FROM {db}.session_list")[0]["cost_usd"] == pytest.approx(7.0)
    # a negative price is no price: the call counts as unpriced, not as a refund
    client.command(f"INSERT INTO {db}.model_prices (model, input_per_mtok, output_per_mtok, "
                   "cached_input_per_mtok) VALUES ('gpt-4o', -1, 8, 1)")
    reload(client, db)
    got = rows(client, f"SELECT cost_usd, unpriced_calls FROM {db}.session_list")[0]
    assert got == {"cost_usd": 0.0, "unpriced_calls": 1}


def test_a_price_change_applies_from_its_date_in_views_and_processor(store, chdb_url):
    client, db = store
    client.command(INSERT_PRICE.format(db=db) + f"('acme', 'house-model', '1970-01-01', 1, 10, 0.5), "
                   f"('acme', 'house-model', '{CHANGE}', 3, 30, 1.5)")
    reload(client, db)
    before = DAY_1 + timedelta(days=8, hours=14, minutes=59)  # 23:59 on 9 March (UTC)
    after = DAY_1 + timedelta(days=9)  # 10 March
    spans = [(before, "b", chat("S2", "house-model", 1_000_000, 100_000, provider="acme")),
             (after, "a", chat("S2", "house-model", 1_000_000, 100_000, provider="acme"))]
    insert(client, db, spans)
    old, new = 1 + 1.0, 3 + 3.0
    detail = rows(client, f"SELECT span_id, cost_usd FROM {db}.session_detail(session_id='S2', project='')")
    assert {r["span_id"]: r["cost_usd"] for r in detail} == {"b": pytest.approx(old), "a": pytest.approx(new)}
    assert rows(client, f"SELECT cost_usd FROM {db}.session_list")[0]["cost_usd"] == pytest.approx(old + new)
    vitals = rows(client, f"SELECT total_cost_usd FROM {db}.session_vitals(since='', until='', project='', "
                          "environment='', service='', agent='', user='')")[0]
    assert vitals["total_cost_usd"] == pytest.approx(old + new)
    # the collector's processor, reading the same table, stamps the same figures
    processor = cost.CostProcessor(cost.Config())
    processor.start(_Host(chdb_url, db))
    try:
        stamped = processor.process([_span(t, a) for t, _, a in spans])
    finally:
        processor.shutdown()
    assert [float(s.attributes[c.COST]) for s in stamped] == [pytest.approx(old), pytest.approx(new)]


def _span(start: datetime, attributes: dict[str, str]) -> Span:
    ns = int(start.timestamp()) * 10**9
    return Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=b"", name="chat", kind=3,
                start_time_unix_nano=ns, end_time_unix_nano=ns + 10**6, attributes=dict(attributes),
                resource={})


def test_request_model_fallback_and_unpriced_calls(store):
    client, db = store
    insert(client, db, [
        # a new dated snapshot the package has no price for yet: priced as the requested model
        (DAY_1, "f1", chat("S3", "gpt-4o-nextgen-2099-01-01x", 1_000_000, 0, request="gpt-4o")),
        (DAY_1, "f2", chat("S3", "mystery-model-x9", 1000, 10, request="mystery-model-x9")),
        (DAY_1, "f3", chat("S3", "gpt-4o-mini", 1000, 10, **{"gen_ai.usage.cost": "0.25"})),
    ])
    got = rows(client, f"SELECT cost_usd, unpriced_calls, llm_calls FROM {db}.session_list")[0]
    assert got == {"cost_usd": pytest.approx(2.5 + 0.25), "unpriced_calls": 1, "llm_calls": 3}
    page = rows(client, f"SELECT cost_usd, unpriced_calls FROM {db}.session_list_page(project='', "
                        "user='', environment='', status='', before='', limit=10)")
    assert page == [{"cost_usd": pytest.approx(2.5 + 0.25), "unpriced_calls": 1}]
    assert rows(client, f"SELECT * FROM {db}.unpriced_models") == [{"model": "mystery-model-x9", "calls": 1}]


AGREEMENT = [
    # (provider, response model, request model, day)
    ("openai", "gpt-4o-2024-08-06", "", date(2025, 1, 2)),
    ("openai", "GPT-4o", "", date(2025, 1, 2)),
    ("", "openai/gpt-4o-mini", "", date(2025, 1, 2)),
    ("anthropic", "claude-3-5-sonnet-20241022", "", date(2025, 1, 2)),
    ("gcp.vertex_ai", "claude-sonnet-4-5@20250929", "", date(2025, 1, 2)),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-6-v1:0", "", date(2026, 1, 2)),
    ("github-copilot", "gpt-4o", "", date(2025, 1, 2)),
    ("deepseek", "deepseek-v4-flash", "", date(2026, 8, 16)),
    ("deepseek", "deepseek-v4-flash", "", date(2026, 8, 17)),
    ("deepseek", "deepseek-v4-flash", "", date(2026, 9, 10)),
    ("", "brand-new-model-2099-01-01", "gemini-2.5-flash", date(2025, 1, 2)),
    ("groq", "", "llama-3.3-70b-versatile", date(2025, 1, 2)),
    ("", "my-model-20240101", "", date(2025, 1, 2)),
    ("", "", "", date(2025, 1, 2)),
    ("x", "x/", "/", date(2025, 1, 2)),
]


def test_views_and_processor_price_every_span_the_same(store, chdb_url):
    client, db = store
    spans = []
    for i, (provider, model, request, day) in enumerate(AGREEMENT):
        a = chat("S4", model, 1_000_000, 100_000, request=request, provider=provider,
                 **{"gen_ai.usage.cache_read.input_tokens": "200000",
                    "gen_ai.usage.cache_creation.input_tokens": "100000"})
        spans.append((datetime(day.year, day.month, day.day, 6, tzinfo=timezone.utc), f"p{i}", a))
    insert(client, db, spans)
    sql = {r["span_id"]: r["cost_usd"] for r in rows(client, f"SELECT span_id, cost_usd FROM {db}.session_detail(session_id='S4', project='')")}
    traces = dict(client.query(f"SELECT SpanId, CostUsd FROM {db}.otel_traces").result_rows)
    processor = cost.CostProcessor(cost.Config())
    processor.start(_Host(chdb_url, db))
    try:
        stamped = processor.process([_span(t, a) for t, _, a in spans])
    finally:
        processor.shutdown()
    book = PriceBook(load_price_rows(client, f"{db}.model_prices_resolved"))
    for (provider, model, request, day), (_, sid, _), s in zip(AGREEMENT, spans, stamped):
        price = book.price(provider, model, request, day)
        want = 0.0 if price is None else cost_usd(price, 1_000_000, 100_000, 200_000, 100_000)
        python = float(s.attributes.get(c.COST, 0.0))
        assert sql[sid] == pytest.approx(want, abs=1e-12) == traces[sid], (provider, model, request)
        assert python == pytest.approx(want, abs=1e-12), (provider, model, request)
    priced = [v for v in sql.values() if v]
    assert 3 < len(priced) < len(AGREEMENT)  # some names priced, some not
    # the session's total is the sum of its spans
    total = rows(client, f"SELECT cost_usd FROM {db}.session_list")[0]["cost_usd"]
    assert total == pytest.approx(sum(sql.values()), abs=1e-9)
