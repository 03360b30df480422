"""Migrations that lighten insert and merge work change no answer.

Migration 7 moves insert-time work (stored RequestModel and ResendCount, a prefiltered
policy test, no CallsToPrice state) and reads the 30-day vitals in one pass over the rollup;
migration 8 has otel_traces write compact parts up to 128 MiB and compress with LZ4. On the
same spans every view answers exactly as migration 6's and 7's views answered, before and
after a store holding data is upgraded."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import test_views as tv
from sessionlens.storage import connect
from sessionlens.schema.migrate import MIGRATIONS, SchemaOptions, apply

BEFORE = (6, 7)  # the migrations before the ones under test

# finish reasons as any writer may send them: JSON arrays (escaped, upper case, several,
# broken), bare words, and words that only contain a policy reason
FINISH_REASONS = [
    "", '["stop"]', '["length"]', '["SAFETY"]', '["content_filter"]', '["stop", "refusal"]',
    '["\\u0073afety"]', '["s\\u0061fety"]', '["unsafety"]', '["safety "]', "[oops", "[",
    "content_filter", "Content_Filter", "prohibited_content", "stop", "blocklisted", "spii",
    '["tool_calls"]', '[{"reason": "safety"}]', '["SPII"]', '["\\"safety\\""]', "\\", "safety\\",
]
MODELS = [  # (request model, response model): priced, dated, prefixed, Bedrock, unpriced, none
    ("gpt-4o", "gpt-4o-2024-08-06"), ("gpt-4o-mini", "gpt-4o-mini"),
    ("openai/gpt-4o-mini", ""), ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", ""), ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("mystery-model", "mystery-model"), ("in-house", ""), ("", ""),
]


def realistic_spans(now: datetime, seed: int = 7, sessions: int = 40) -> list[list]:
    """Agents wrapping retried, failed, policy-stopped, self-priced and unpriced LLM calls
    with their HTTP transport spans, over three UTC days, two projects, every alias."""
    rnd = random.Random(seed)
    out = []
    for s in range(sessions):
        project = {"sessionlens.project": f"p{s % 2}", "service.name": f"svc{s % 3}",
                   "deployment.environment" if s % 5 == 0 else "deployment.environment.name":
                       ["prod", "staging"][s % 2]}
        start = now - timedelta(days=s % 3, minutes=rnd.randrange(0, 600))
        ident = [{"session.id": f"s{s}"}, {"gen_ai.conversation.id": f"s{s}"},
                 {"langfuse.session.id": f"s{s}"}, {}][s % 4]
        user = [{"user.id": f"u{s % 6}"}, {"enduser.id": f"u{s % 6}"}, {}][s % 3]
        for t in range(rnd.randrange(1, 4)):
            trace = f"t{s}-{t}"
            agent_id = f"sp{s}-{t}"
            agent = {"gen_ai.agent.id": f"agent-{(s + t) % 4}"} if rnd.random() < .7 else \
                {"gen_ai.agent.name": f"named-{t}"}
            common = {**ident, **user, **agent, "sessionlens.run.id": f"run-{s}-{t % 2}",
                      "sessionlens.session.path": rnd.choice(["", "plan", "plan/draft", "answer"])}
            if s % 7 == 0:
                common["sessionlens.session.name"] = f"name {s} {t}"
            t0 = start + timedelta(seconds=60 * t)
            out.append(tv.span(t0, trace, agent_id, "invoke_agent",
                               {**common, "gen_ai.operation.name": "invoke_agent",
                                "gen_ai.usage.input_tokens": rnd.randrange(0, 5000)},
                               rnd.randrange(1000, 30000), resource=project))
            for k in range(rnd.randrange(1, 6)):
                request, response = rnd.choice(MODELS)
                retries = rnd.choice([0, 0, 0, 1, 2])
                for attempt in range(retries + 1):
                    last = attempt == retries
                    ok = last and rnd.random() < .85
                    attrs = {**common, "gen_ai.operation.name": rnd.choice(["chat", "chat", "text_completion"]),
                             "gen_ai.provider.name" if rnd.random() < .8 else "gen_ai.system":
                                 rnd.choice(["openai", "anthropic", "aws.bedrock", "gcp.gemini"])}
                    if request:
                        attrs["gen_ai.request.model"] = request
                    if response and ok:
                        attrs["gen_ai.response.model"] = response
                    if ok:
                        attrs["gen_ai.usage.input_tokens" if rnd.random() < .8 else "gen_ai.usage.prompt_tokens"] = \
                            rnd.randrange(0, 20000)
                        attrs["gen_ai.usage.output_tokens"] = rnd.randrange(0, 3000)
                        attrs["gen_ai.response.finish_reasons"] = rnd.choice(FINISH_REASONS)
                        if rnd.random() < .3:
                            attrs["gen_ai.usage.cache_read.input_tokens"] = rnd.randrange(0, 500)
                        if rnd.random() < .1:
                            attrs["gen_ai.usage.cache_creation.input_tokens"] = rnd.randrange(0, 500)
                        if rnd.random() < .1:
                            attrs["gen_ai.usage.cost"] = rnd.choice(["0.01", "NaN", "-1", "2e6", "0"])
                        if rnd.random() < .2:
                            attrs["gen_ai.response.time_to_first_chunk"] = rnd.random()
                    if attempt:
                        attrs["http.request.resend_count"] = rnd.choice([attempt, str(attempt), "x"])
                    if rnd.random() < .1:
                        attrs["error.type"] = rnd.choice(["content_policy_violation", "timeout"])
                    if rnd.random() < .15:
                        attrs[f"sessionlens.property.{rnd.choice(['tier', 'region'])}"] = rnd.choice(["free", "pro", ""])
                    span_id = f"c{s}-{t}-{k}-{attempt}"
                    at = t0 + timedelta(seconds=k * 5 + attempt)
                    message = "" if ok else rnd.choice(["HTTP 429", "Error code: 400 content_filter", "boom"])
                    out.append(tv.span(at, trace, span_id, "chat", attrs, rnd.randrange(50, 5000),
                                       parent=agent_id, resource=project,
                                       status=rnd.choice(["Ok", "Unset"]) if ok else rnd.choice(["Error", "STATUS_CODE_ERROR"]),
                                       message=message))
                    http = tv.span(at, trace, span_id + "-http", "POST",
                                   {**ident, "http.request.method": "POST"}, 40, parent=span_id,
                                   resource=project, status="Unset" if ok else "Error")
                    http[tv.COLUMNS.index("ScopeName")] = tv.HTTPX
                    out.append(http)
    rnd.shuffle(out)
    return out


def _same_sums(value):
    """``value`` with floats to 12 significant digits: a sum of costs may add its terms in
    another order when the parts merged at other times (0.2392039 or 0.23920389999999997)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _same_sums(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_same_sums(v) for v in value)
    return value


def answers(client, db: str, spans: list[list], now: datetime) -> dict:
    """Every view's answer (status aside: it moves with the clock) and the per-span columns
    this migration changed."""
    got: dict = {}
    q = lambda sql, **p: tv.rows(client, sql, **p)  # noqa: E731
    got["list"] = q(f"SELECT * EXCEPT (status) FROM {db}.session_list ORDER BY project, session_id")
    for filters in ({}, {"project": "p1"}, {"user": "u1"}, {"environment": "staging"}):
        got[f"page {filters}"] = [{k: v for k, v in r.items() if k != "status"}
                                  for r in tv.page(client, db, limit=20, **filters)]
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    for filters in ({}, {"since": since}, {"agent": "agent-1"}, {"agent": "named-0"},
                    {"user": "u2"}, {"project": "p0", "environment": "prod"}, {"service": "svc2"},
                    {"agent": "agent-2", "since": since}, {"agent": "nobody"}):
        got[f"vitals {filters}"] = {k: v for k, v in tv.vitals(client, db, **filters).items()
                                    if k != "active_sessions"}
    # detail and breakdown of the busiest sessions and of test_views' S_A and S_R
    picked = client.query(f"SELECT project, session_id FROM {db}.session_list "
                          f"ORDER BY session_id IN ('S_A', 'S_R') DESC, llm_calls + retries DESC, session_id "
                          f"LIMIT 6").result_rows
    for project, sid in picked:
        got[f"detail {project} {sid}"] = q(
            f"SELECT * FROM {db}.session_detail(session_id={{s:String}}, project={{p:String}})", s=sid, p=project)
        got[f"breakdown {project} {sid}"] = q(
            f"SELECT * FROM {db}.session_breakdown(session_id={{s:String}}, project={{p:String}})", s=sid, p=project)
    got["unpriced"] = q(f"SELECT * FROM {db}.unpriced_models")
    got["spans"] = q(f"SELECT SpanId, RequestModel, ResendCount, IsPolicyEvent, IsHttpClient, CostUsd "
                     f"FROM {db}.otel_traces ORDER BY SpanId")
    assert len(got["spans"]) == len(spans)
    return _same_sums(got)


@pytest.fixture
def stores(chdb_url):
    """A store of each of migrations 6 and 7 and one of every migration, each given the same
    spans in three inserts."""
    client = connect(chdb_url)
    dbs = {v: f"t_iw{v}_{uuid.uuid4().hex[:8]}" for v in (*BEFORE, MIGRATIONS[-1].version)}
    now = datetime.now(timezone.utc)
    spans = realistic_spans(now) + tv.SPANS + tv.COUNTING
    try:
        for version, db in dbs.items():
            apply(client, SchemaOptions(database=db), until=version)
            third = len(spans) // 3
            for batch in (spans[:third], spans[third:2 * third], spans[2 * third:]):
                client.insert(f"{db}.otel_traces", batch, column_names=tv.COLUMNS)
        yield client, dbs, spans, now
    finally:
        for db in dbs.values():
            client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        client.close()


def test_every_view_answers_as_before_on_realistic_spans_and_after_the_upgrade(stores):
    client, dbs, spans, now = stores
    after = answers(client, dbs[MIGRATIONS[-1].version], spans, now)
    for version in BEFORE:
        before = answers(client, dbs[version], spans, now)
        assert before.keys() == after.keys()
        for key in before:
            assert after[key] == before[key], (version, key)
    # the span set exercises what changed: retries, policy events, transports, prices
    vitals = after["vitals {}"]
    assert vitals["sessions"] > 40 and vitals["llm_calls"] > 100
    flags = [(r["ResendCount"] > 0, r["IsPolicyEvent"], r["IsHttpClient"]) for r in after["spans"]]
    assert all(any(f[i] for f in flags) for i in range(3))
    assert after["unpriced"]

    # upgraded, the rows stored under migration 6 (no stored RequestModel/ResendCount:
    # computed from the same expressions when read) and under 7 (ZSTD, wide parts) answer
    # as the rows stored after, and still do once merges rewrite them with today's layout
    for version in BEFORE:
        apply(client, SchemaOptions(database=dbs[version]))
        assert answers(client, dbs[version], spans, now) == after, version
        client.command(f"OPTIMIZE TABLE {dbs[version]}.otel_traces FINAL")
        assert answers(client, dbs[version], spans, now) == after, version


def test_the_policy_prefilter_never_changes_the_answer(chdb_url, database):
    """Any finish-reason text, JSON escapes and odd case included: migration 7's policy test
    equals migration 5's JSON parse on every span."""
    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database))
    rnd = random.Random(11)
    words = ["safety", "SAFETY", "refusal", "spii", "blocklist", "content_filter", "stop", "length",
             "prohibited_content", "Safety", "unsafe", "saf\u00e9ty", "\u0073afety"]
    texts = set(FINISH_REASONS)
    for _ in range(400):
        picked = [rnd.choice(words) for _ in range(rnd.randrange(0, 3))]
        raw = json.dumps(picked, ensure_ascii=rnd.random() < .5)
        if rnd.random() < .3:  # escape a letter the way any JSON writer may
            raw = raw.replace("a", "\\u0061")
        texts |= {raw, rnd.choice(words), raw.upper(), raw[:-1]}
    rows = [tv.span(datetime(2026, 1, 1), "t", f"s{i}", "chat",
                    {"gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": text},
                    10, status="Error" if i % 2 else "Unset") for i, text in enumerate(sorted(texts))]
    client.insert(f"{database}.otel_traces", rows, column_names=tv.COLUMNS)
    old = next(m for m in MIGRATIONS if m.version == 5).text
    expression = old[old.index("IsPolicyEvent UInt8 ALIAS ") + len("IsPolicyEvent UInt8 ALIAS "):]
    expression = expression[:expression.index(");\n") + 1]
    differ = client.query(
        f"SELECT SpanAttributes['gen_ai.response.finish_reasons'], IsPolicyEvent, {expression} AS before "
        f"FROM {database}.otel_traces WHERE IsPolicyEvent != before").result_rows
    assert differ == []
    assert 0 < client.command(f"SELECT sum(IsPolicyEvent) FROM {database}.otel_traces") < len(rows)
    client.close()


def test_the_spans_table_writes_compact_lz4_parts_its_columns_unchanged(chdb_url):
    """Migration 8 changes how otel_traces' parts are laid out, not what it holds: the
    clickhouseexporter's columns keep their types (the session columns their expressions),
    an insert just over ClickHouse's 10 MiB wide-part threshold writes a compact part (one
    data file: migration 7's store writes it wide), and the exporter's columns are LZ4."""
    client = connect(chdb_url)
    dbs = {v: f"t_lp{v}_{uuid.uuid4().hex[:8]}" for v in (7, MIGRATIONS[-1].version)}
    # ~11 MiB of spans, one part: each span carries 40 KB of messages, as LLM spans do
    big = [tv.span(datetime(2026, 1, 1) + timedelta(seconds=i), f"t{i // 4}", f"s{i}", "chat",
                   {"gen_ai.operation.name": "chat", "session.id": f"s{i // 20}",
                    "gen_ai.input.messages": json.dumps([{"role": "user", "content": "x" * 40_000}])},
                   10) for i in range(280)]
    try:
        for version, db in dbs.items():
            apply(client, SchemaOptions(database=db), until=version)
            client.insert(f"{db}.otel_traces", big, column_names=tv.COLUMNS)
        columns, kinds = {}, {}
        for version, db in dbs.items():
            columns[version] = [tuple(c.replace(db, "DB") for c in r) for r in client.query(
                "SELECT name, type, default_kind, default_expression FROM system.columns "
                "WHERE database = {d:String} AND table = 'otel_traces' ORDER BY position",
                parameters={"d": db}).result_rows]
            kinds[version] = client.query(
                "SELECT part_type, data_uncompressed_bytes FROM system.parts WHERE database = {d:String} "
                "AND table = 'otel_traces' AND active", parameters={"d": db}).result_rows
        latest = MIGRATIONS[-1].version
        assert columns[latest] == columns[7]
        assert [k for k, _ in kinds[7]] == ["Wide"] and kinds[7][0][1] > 10 * 2**20
        assert [k for k, _ in kinds[latest]] == ["Compact"]
        codecs = dict(client.query(
            "SELECT name, compression_codec FROM system.columns WHERE database = {d:String} "
            "AND table = 'otel_traces' AND default_kind = ''", parameters={"d": dbs[latest]}).result_rows)
        top = {k: v for k, v in codecs.items() if "." not in k}
        assert top["Timestamp"] == "CODEC(Delta(8), LZ4)" and top["Duration"] == "CODEC(T64, LZ4)"
        assert {v for k, v in top.items() if k not in ("Timestamp", "Duration")} == {"CODEC(LZ4)"}
        # the same spans read back the same from either layout
        read = "SELECT *, SessionId, SessionSource, Model, IsLlmCall FROM {}.otel_traces ORDER BY SpanId"
        assert tv.rows(client, read.format(dbs[7])) == tv.rows(client, read.format(dbs[latest]))
    finally:
        for db in dbs.values():
            client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        client.close()
