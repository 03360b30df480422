"""The Grafana datasource and dashboards under schema/grafana/.

Every panel's SQL is expanded the way Grafana and grafana-clickhouse-datasource expand it
(tests/grafana_plugin.py) and run on chDB against the known span set of test_views, so a
dashboard that reads a column a view does not have, or a filter that does not filter,
fails here rather than in someone's Grafana.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
import yaml

from grafana_plugin import ALL, Variable, conditional_all, interpolate, render
from sessionlens.storage import connect
from sessionlens.schema import queries
from sessionlens.schema.grafana import DASHBOARDS, PROVISIONING
from sessionlens.schema.migrate import SchemaOptions, apply
from test_views import COLUMNS, NOW, SPANS, chat, span

PUBLIC_VIEWS = {"session_list", "session_list_page", "session_vitals", "session_detail", "session_breakdown"}
# the OTel traces table, for per-call figures no session view splits (its session columns)
SPAN_TABLE = "otel_traces"
FILTERS = ("project", "environment", "service", "agent", "user")
FROM, TO = NOW - timedelta(hours=2), NOW + timedelta(minutes=1)

# A span writer controls user and session ids: these would end a single-quoted literal.
HOSTILE_USER = "mallory\\' OR 1=1 --"
HOSTILE_SESSION = "S_'\\x"
HOSTILE_SPANS = [
    span(NOW - timedelta(minutes=5), "tH", "h1", "chat gpt-4o-mini",
         {"session.id": HOSTILE_SESSION, "user.id": HOSTILE_USER, **chat("gpt-4o-mini", 10, 1)}, 100),
]


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / f"{name}.json").read_text())


DASHBOARD_NAMES = sorted(p.stem for p in DASHBOARDS.glob("*.json"))


def panel_queries(dashboard: dict):
    """(where, sql, panel-or-None) for every panel target and query variable."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"], None
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["rawSql"], panel


def used_columns(panel: dict) -> set[str]:
    """The result columns a panel refers to by name: overrides, stat fields, links."""
    names = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]
             if o["matcher"]["id"] == "byName"}
    fields = panel["options"].get("reduceOptions", {}).get("fields", "")
    if fields:
        names |= set(re.fullmatch(r"/\^\((.*)\)\$/", fields).group(1).split("|"))
    names |= set(re.findall(r"__data\.fields\.(\w+)", json.dumps(panel)))
    if panel["type"] == "timeseries":
        names.add("time")
    return names


class Store:
    """The loaded test database; queries name it where the dashboards say ``otel``."""

    def __init__(self, client, database: str) -> None:
        self.client, self.database = client, database

    def query(self, sql: str, **kwargs):
        return self.client.query(re.sub(r"\botel\.", f"{self.database}.", sql), **kwargs)


@pytest.fixture(scope="module")
def grafana_store(chdb_url):
    # One loaded database for the whole module (chDB allows one engine path per process:
    # the session's store, under a name of its own).
    database = "grafana_" + uuid.uuid4().hex[:8]
    client = connect(chdb_url)
    apply(client, SchemaOptions(database=database))
    client.insert(f"{database}.otel_traces", SPANS + HOSTILE_SPANS, column_names=COLUMNS)
    yield Store(client, database)
    client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    client.close()


def options(client, dashboard: dict, name: str) -> list[str]:
    """A query variable's options, from its own query (as Grafana fetches them)."""
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == name)
    sql = render(variable["query"], all_selected(dashboard), FROM, TO)
    return [row[0] for row in client.query(sql).result_rows]


# the project of the known spans: what a single-value project variable (Session detail) holds
TEST_PROJECT = "acme"


def all_selected(dashboard: dict) -> dict[str, Variable]:
    """Every variable at its default: "All" for the filters (the test project where a
    variable has no "All"), empty text boxes."""
    variables = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            variables[variable["name"]] = Variable(ALL if variable["includeAll"] else TEST_PROJECT)
        elif variable["type"] == "textbox":
            variables[variable["name"]] = Variable("")
    return variables


def run(client, sql: str, variables: dict[str, Variable]) -> list[dict]:
    result = client.query(render(sql, variables, FROM, TO, interval_s=300))
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


# --- the files --------------------------------------------------------------------------


@pytest.mark.parametrize("name", DASHBOARD_NAMES)
def test_dashboard_is_valid_json_with_uid_title_and_no_datasource_uid(name):
    dashboard = load(name)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"].strip()
    assert dashboard["schemaVersion"] >= 36
    datasource = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in datasource] == [("datasource", "grafana-clickhouse-datasource")]

    def datasources(node):
        if isinstance(node, dict):
            if "datasource" in node and isinstance(node["datasource"], dict):
                yield node["datasource"]
            for value in node.values():
                yield from datasources(value)
        elif isinstance(node, list):
            for value in node:
                yield from datasources(value)

    refs = list(datasources(dashboard))
    assert refs, "panels name their datasource"
    assert all(r == {"type": "grafana-clickhouse-datasource", "uid": "${datasource}"} for r in refs), refs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_three_dashboards_with_distinct_uids_linking_to_each_other():
    dashboards = {n: load(n) for n in DASHBOARD_NAMES}
    assert set(dashboards) == {"sessions-overview", "session-detail", "cost"}
    uids = {d["uid"] for d in dashboards.values()}
    assert len(uids) == 3
    detail_uid = dashboards["session-detail"]["uid"]
    for name in ("sessions-overview", "cost"):
        links = re.findall(r"/d/([\w-]+)/[^?\"]*\?var-session_id=\$\{__value\.raw:percentencode\}",
                           json.dumps(dashboards[name]))
        assert links and set(links) == {detail_uid}, name


@pytest.mark.parametrize("name", DASHBOARD_NAMES)
def test_panels_read_only_the_public_views(name):
    for where, sql, _ in panel_queries(load(name)):
        sources = re.findall(r"\b(?:FROM|JOIN)\s+([\w.`]+)", sql, flags=re.IGNORECASE)
        assert sources, where
        assert {s.removeprefix("otel.") for s in sources} <= PUBLIC_VIEWS | {SPAN_TABLE}, (where, sources)
        if f"otel.{SPAN_TABLE}" in sources:
            assert "IsLlmCall" in sql and "CostUsd" in sql and "SpanAttributes" not in sql, where
        assert all(s.startswith("otel.") for s in sources), (where, sources)


@pytest.mark.parametrize("name", DASHBOARD_NAMES)
def test_every_variable_reaches_sql_percent_encoded(name):
    """No value is ever pasted raw or single-quoted into SQL (see schema/grafana docs)."""
    dashboard = load(name)
    names = {v["name"] for v in dashboard["templating"]["list"] if v["type"] != "datasource"}
    for where, sql, _ in panel_queries(dashboard):
        # the second argument of $__conditionalAll names the variable; it never reaches SQL
        rest = re.sub(r",\s*\$\w+\)", ")", sql)
        rest = re.sub(r"decodeURLComponent\('\$\{(\w+):percentencode\}'\)", "", rest)
        leftovers = [m for m in re.findall(r"\$\{?(\w+)", rest) if m in names]
        assert not leftovers, (where, leftovers)
        assert ":singlequote" not in sql and "[[" not in sql, where


def test_datasource_provisioning():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "sessionlens.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "grafana-clickhouse-datasource"
    data = ds["jsonData"]
    assert data["protocol"] == "native" and data["defaultDatabase"] == "otel"
    traces = data["traces"]
    assert (traces["defaultDatabase"], traces["defaultTable"], traces["otelEnabled"]) == ("otel", "otel_traces", True)
    assert traces["durationUnit"] == "nanoseconds"
    assert "password" in ds["secureJsonData"] and "password" not in data
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "sessionlens.yaml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]


def test_otel_trace_defaults_match_the_traces_table(grafana_store):
    """The plugin's OTel column map (TraceId, SpanId … Duration in ns) exists in otel_traces,
    and the timeline's trace_id values are otel_traces.TraceId values, so View trace finds them."""
    columns = {name for (name,) in grafana_store.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'otel_traces'",
        parameters={"db": grafana_store.database}).result_rows}
    assert {"Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
            "ServiceName", "ResourceAttributes", "SpanAttributes", "ScopeName", "ScopeVersion",
            "Duration", "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name",
            "Events.Attributes", "Links.TraceId", "Links.SpanId"} <= columns
    tables = {t for (t,) in grafana_store.query(f"SHOW TABLES FROM {grafana_store.database}").result_rows}
    assert "otel_traces_trace_id_ts" in tables
    detail = load("session-detail")
    timeline = next(p for p in detail["panels"] if p["title"] == "Timeline")
    variables = {**all_selected(detail), "session_id": Variable("S_A")}
    rows = run(grafana_store, timeline["targets"][0]["rawSql"], variables)
    trace_ids = {r["trace_id"] for r in rows}
    assert trace_ids == {"tA1", "tA2"}
    stored = {t for (t,) in grafana_store.query(
        "SELECT DISTINCT TraceId FROM otel.otel_traces WHERE TraceId IN ('tA1', 'tA2')").result_rows}
    assert stored == trace_ids


# --- the expander ------------------------------------------------------------------------


def test_expander_follows_the_plugin_rules():
    variables = {"env": Variable(ALL, options=["prod", "staging"]), "user": Variable("o'neil"),
                 "empty": Variable("")}
    assert conditional_all("WHERE $__conditionalAll(e IN ($env), $env)", variables) == "WHERE 1=1"
    assert conditional_all("WHERE $__conditionalAll(e = 1, ${empty})", variables) == "WHERE 1=1"
    assert conditional_all("WHERE $__conditionalAll(u = f(a, b), $user)", variables) == "WHERE u = f(a, b)"
    # a variable without a format: the plugin joins a list with quotes and escapes nothing
    assert interpolate("IN ($env)", variables) == "IN ('prod','staging')"
    assert interpolate("= '$user'", variables) == "= 'o'neil'"
    assert interpolate("${user:singlequote} ${env:singlequote}", variables) == "'o\\'neil' 'prod','staging'"
    assert interpolate("${user:percentencode}", variables) == "o%27neil"
    sql = render("WHERE $__timeFilter(t) AND x = $__fromTime AND $__dateFilter(d) LIMIT $__interval_s",
                 {}, FROM, TO, interval_s=0.2)
    f, t = int(FROM.timestamp()), int(TO.timestamp())
    assert sql == (f"WHERE t >= toDateTime({f}) AND t <= toDateTime({t}) AND x = toDateTime({f}) AND "
                   f"d >= toDate('{FROM:%Y-%m-%d}') AND d <= toDate('{TO:%Y-%m-%d}') LIMIT 1")


def test_singlequote_is_not_safe_in_clickhouse(grafana_store):
    """Why the dashboards use percentencode: a hostile value through ${var:singlequote} ends
    the literal (ClickHouse reads backslash escapes) and widens the filter to every session."""
    variables = {"user": Variable(HOSTILE_USER)}
    sql = "SELECT count() FROM otel.session_list WHERE user_id = ${user:singlequote}"
    injected = grafana_store.query(interpolate(sql, variables)).result_rows[0][0]
    total = grafana_store.query("SELECT count() FROM otel.session_list").result_rows[0][0]
    assert injected == total > 1
    safe = "SELECT count() FROM otel.session_list WHERE user_id = decodeURLComponent('${user:percentencode}')"
    assert grafana_store.query(interpolate(safe, variables)).result_rows[0][0] == 1


# --- every panel on chDB ------------------------------------------------------------------


@pytest.mark.parametrize("name", DASHBOARD_NAMES)
def test_every_query_runs_and_returns_the_columns_its_panel_uses(grafana_store, name):
    dashboard = load(name)
    selections = [all_selected(dashboard)]
    # one value per filter, then each filter alone, as a user picks them
    picked = {"project": "acme", "environment": "prod", "service": "chatbot", "agent": "planner",
              "user": "alice", "session_id": "S_A"}
    base = all_selected(dashboard)
    if "session_id" in base:
        base["session_id"] = Variable("S_A")
        selections = [base]
    for key in base:
        if key != "session_id":
            selections.append({**base, key: Variable(picked[key])})
    for variables in selections:
        for where, sql, panel in panel_queries(dashboard):
            rows = run(grafana_store, sql, variables)
            assert rows, (where, {k: v.value for k, v in variables.items()})
            if panel is not None:
                missing = used_columns(panel) - set(rows[0])
                assert not missing, (where, missing)


def test_variable_options_come_from_the_data(grafana_store):
    detail = load("session-detail")
    (project,) = [v for v in detail["templating"]["list"] if v["name"] == "project"]
    assert not project["includeAll"]  # a session lives in one project: no "All"
    assert options(grafana_store, detail, "project") == ["", "acme"]  # '' = spans sent without a token
    overview = load("sessions-overview")
    assert options(grafana_store, overview, "project") == ["acme"]
    assert options(grafana_store, overview, "environment") == ["prod", "staging"]
    assert set(options(grafana_store, overview, "agent")) == {"planner", "researcher"}
    assert HOSTILE_USER in options(grafana_store, overview, "user")


def test_filters_select_exactly_the_matching_sessions(grafana_store):
    overview = load("sessions-overview")
    table = next(p for p in overview["panels"] if p["title"] == "Sessions")
    sql = table["targets"][0]["rawSql"]
    everything = {r["session_id"] for r in run(grafana_store, sql, all_selected(overview))}
    assert {"S_A", "S_B", "S_D", HOSTILE_SESSION} <= everything
    cases = {
        "environment": ("staging", {"S_B"}),
        "agent": ("researcher", {"S_A"}),
        "user": (HOSTILE_USER, {HOSTILE_SESSION}),
        "service": ("batch", {"S_B"}),
    }
    for key, (value, expected) in cases.items():
        variables = {**all_selected(overview), key: Variable(value)}
        assert {r["session_id"] for r in run(grafana_store, sql, variables)} == expected, key


@pytest.mark.parametrize("filters", [{}, {"environment": "prod"}, {"agent": "planner"}, {"user": "bob"},
                                     {"project": "acme", "service": "batch"}])
def test_overview_figures_equal_the_vitals_for_the_same_range(grafana_store, filters):
    overview = load("sessions-overview")
    panel = next(p for p in overview["panels"] if p["title"] == "Vitals")
    variables = {**all_selected(overview), **{k: Variable(v) for k, v in filters.items()}}
    (shown,) = run(grafana_store, panel["targets"][0]["rawSql"], variables)
    expected = queries.vitals(grafana_store.client, queries.Filters(since=FROM, until=TO, **filters),
                              database=grafana_store.database)
    assert expected["sessions"] > 0
    assert shown == {k: expected[k] for k in shown}
    assert used_columns(panel) == set(shown)


@pytest.mark.parametrize("session_id", ["S_A", "S_B"])
def test_session_detail_breakdowns_equal_the_read_layers(grafana_store, session_id):
    detail = load("session-detail")
    variables = {**all_selected(detail), "session_id": Variable(session_id)}
    expected = queries.breakdown(grafana_store.client, "acme", session_id, database=grafana_store.database)
    for name, title in (("by_agent", "Cost by agent"), ("by_model", "Cost by model"),
                        ("by_path", "Cost by path"), ("by_run", "Cost by run")):
        panel = next(p for p in detail["panels"] if p["title"] == title)
        shown = run(grafana_store, panel["targets"][0]["rawSql"], variables)
        calls = [r for r in expected[name] if r["llm_calls"]]
        assert [r["key"] for r in shown] == [r["key"] for r in calls], (session_id, name)
        for mine, theirs in zip(shown, calls):
            assert mine == {k: pytest.approx(v) if isinstance(v, float) else v
                            for k, v in theirs.items()}, (session_id, name)
    assert [r["key"] for r in expected["by_model"] if r["llm_calls"]] != []


@pytest.mark.parametrize("title, name", [("By agent", "by_agent"), ("By model", "by_model")])
def test_cost_by_agent_and_model_equal_the_sessions_breakdowns(grafana_store, title, name):
    """Across sessions: the sum of every session's breakdown (all test spans are in range)."""
    cost = load("cost")
    panel = next(p for p in cost["panels"] if p["title"] == title)
    shown = {r[name.removeprefix("by_")]: r for r in run(grafana_store, panel["targets"][0]["rawSql"],
                                                           all_selected(cost))}
    sessions = {r["session_id"]: r["project"] for r in run(
        grafana_store, "SELECT session_id, project FROM otel.session_list", {})}
    expected: dict[str, dict] = {}
    for session_id, project in sessions.items():
        for row in queries.breakdown(grafana_store.client, project, session_id,
                                     database=grafana_store.database)[name]:
            if row["llm_calls"]:
                total = expected.setdefault(row["key"] or "(none)", dict.fromkeys(
                    ("llm_calls", "input_tokens", "output_tokens", "cost_usd"), 0))
                for figure in total:
                    total[figure] += row[figure]
    assert set(shown) == set(expected) and len(expected) > 1
    for key, figures in expected.items():
        assert {f: shown[key][f] for f in figures} == pytest.approx(figures), key


def test_session_detail_totals_equal_the_session_row(grafana_store):
    detail = load("session-detail")
    totals = next(p for p in detail["panels"] if p["title"] == "Totals")
    variables = {**all_selected(detail), "session_id": Variable(HOSTILE_SESSION)}
    (shown,) = run(grafana_store, totals["targets"][0]["rawSql"], variables)
    assert shown["llm_calls"] == 1 and shown["input_tokens"] == 10
    variables["project"] = Variable("someone-else")
    assert run(grafana_store, totals["targets"][0]["rawSql"], variables) == []


def test_readme_grafana_user_sql_parses(grafana_store):
    """The read-only user of the README is valid ClickHouse SQL (chDB cannot create users,
    so its parser checks it), keeps max_execution_time changeable and grants dictGet."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Grafana", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    statements = [s.strip() for s in block.split(";") if s.strip()]
    assert len(statements) == 4
    for statement in statements:
        formatted = grafana_store.client.query(
            "SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted.split()[0] in ("CREATE", "GRANT")
    assert "readonly = 1" in block and "max_execution_time = 60 CHANGEABLE_IN_READONLY" in block
    granted = set(re.findall(r"GRANT dictGet ON otel\.(\w+)", block))
    dictionaries = {d for (d,) in grafana_store.query(
        "SELECT name FROM system.dictionaries WHERE database = {db:String}",
        parameters={"db": grafana_store.database}).result_rows}
    assert granted == dictionaries and granted
