"""sessionlens.schema: the ClickHouse schema — spans, session rollup, views, prices.

Public query interface (stable names and columns; what each figure counts: docs/counting.md),
in database ``otel`` by default::

    SELECT * FROM otel.session_list_page(project='', user='', environment='', status='',
                                         before='', limit=50)
    SELECT * FROM otel.session_list WHERE session_id = 'abc'
    SELECT * FROM otel.session_vitals(since='2025-01-01 00:00:00', until='', project='',
                                      environment='', service='', agent='', user='')
    SELECT * FROM otel.session_detail(session_id='abc', project='')
    SELECT * FROM otel.session_breakdown(session_id='abc', project='')
    SELECT * FROM otel.unpriced_models

``session_list_page`` is how a list is shown (dashboards, applications): the ``limit``
sessions with the latest activity, newest first, with the columns of ``session_list``;
``status`` is ``active``/``completed``, and ``before`` (a date-time) is the cursor: pass the
``last_seen`` of the page's last row to get the next page. It reads the bulky per-session
figures of the page's sessions only, so it stays fast at any number of sessions; a plain
``SELECT … FROM session_list ORDER BY … LIMIT`` re-aggregates every session first.

``session_list_page``, ``session_vitals``, ``session_detail`` and ``session_breakdown`` are
parameterized views: ClickHouse requires every parameter. In ``session_list_page`` and
``session_vitals`` an empty string means "no filter" (``since``/``until``/``before`` take any
date-time ``parseDateTime64BestEffort`` reads; in vitals a session counts whole when its
activity overlaps the range). ``session_detail`` and ``session_breakdown`` read one session
of ONE project (``''`` is the project of a collector without bearer tokens): another
project's session of the same id never shows. (Interface change in migration 5:
``session_detail`` took ``session_id`` only.) From clickhouse-connect pass them as query
parameters, e.g. ``session_detail(session_id={id:String}, project={p:String})`` with
``parameters={"id": ..., "p": ...}``.

What counts (migration 5, ``migrations/0005_what_counts.sql`` states the rules): an LLM
attempt with ``http.request.resend_count`` > 0 counts in ``retries``, not ``llm_calls``;
``errors`` are calls whose final attempt failed (failed attempts − retries, exact because
the SDKs retry only after a failure); spans that are no LLM call — agent and tool spans, the
httpx instrumentation's ``POST`` spans (``is_transport`` in ``session_detail``) — never count.
``status`` compares ``last_seen`` with the inactivity timeout stored in
``sessionlens_settings`` (written by the collector at start from its autosession processor,
or by ``sessionlens schema apply --inactivity-timeout``). ``session_vitals(agent=…)`` gives
that agent's own calls, cost, errors, tokens and latency; ``session_breakdown`` gives each
agent, model (as requested), path and run of a session its own figures (each dimension sums
to the session's totals). Token counts and costs from any writer are kept sane: a token
count is clamped to [0, 10^12], a NaN, infinite, negative or absurd (> 10^6 USD) cost is
ignored and the call priced from the table.

Prices: ``model_prices`` holds USD per 1M tokens (input, output, cache-read input,
cache-write input) per ``provider`` (a ``gen_ai.provider.name`` value; ``''`` = any) and
``model``, each in force from its ``effective_from`` day (UTC) until the next row of that
provider and model. It is seeded from the installed ``genai-prices`` package (a maintained,
versioned price database; :mod:`price_seed`) and brought up to date with it at every
``schema apply`` and collector start, so upgrading that package brings new prices without a
release of ours. Override or add a price with a plain INSERT — a user row always wins over
the seeded rows of its provider and model (provider ``''``: of every provider), whatever
the dates::

    INSERT INTO otel.model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok)
    VALUES ('my-model', 1.0, 2.0, 0.5)
    INSERT INTO otel.model_prices (provider, model, effective_from, input_per_mtok,
        output_per_mtok, cached_input_per_mtok, cache_write_per_mtok)
    VALUES ('openai', 'gpt-4o', '2026-12-01', 2.0, 8.0, 1.0, 2.0)

``model_prices_resolved`` shows the rows in force. A call is priced on its UTC start day by
its response model, else its request model, for its provider, else any (the full rule:
:mod:`prices`). A span's own ``gen_ai.usage.cost`` always wins. The sessionlens collector's
``cost`` processor stamps that cost on every LLM span it receives, from the prices as they
stand then (re-read every minute), so a new price reaches spans that arrive after it. Spans
that carry no cost (written by a stock OTel Collector, say) are priced when the views are
read, through the ``model_prices_dict`` dictionary: a new price reaches them within a
minute, or at once after ``SYSTEM RELOAD DICTIONARY otel.model_prices_dict``. Calls still
priced 0 count in ``session_list.unpriced_calls`` and their models are listed by
``unpriced_models`` (``sessionlens schema unpriced-models``).

Migrations are frozen SQL files, ``migrations/NNNN_<slug>.sql`` (package data): a DBA can
read every statement, a released file is never edited (a test holds each to its sha256),
and a change is a new file. Deployment knobs (database, ON CLUSTER, table engine, ttl …) are
``${…}`` placeholders, see :mod:`template`. ``apply`` (run by the collector at every start)
also recreates objects of applied migrations that went missing.

Modules: :mod:`prices` (lookup rule, cost formula — shared with the cost processor),
:mod:`price_seed` (the genai-prices seed and its refresh), :mod:`options` (deployment
knobs), :mod:`template` (placeholders, statement splitting), :mod:`names` (object names),
:mod:`quoting`, :mod:`migrate` (versions, ``render``, ``apply``, repair), :mod:`cli`
(``sessionlens schema …``).
"""
