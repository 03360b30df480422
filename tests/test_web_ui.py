"""The web UI in real headless Chromium (Debian's, driven by Playwright), against a real
collector holding a known span set: each page loads, a filter, a sort, a page, a session
with its timeline, and a session appearing live. On failure a screenshot of the page is
saved in the test's tmp dir.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from api_support import Call, send, wait_until
from collector_setup import api_url, grpc_port, start_pipeline

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOP = {"service.name": "shop", "deployment.environment.name": "prod"}


def _calls() -> list[Call]:
    calls = [
        Call("trip-planner", 12, 8000, span=1, trace=1, operation="invoke_agent", model="",
             attributes={"user.id": "ana", "sessionlens.session.name": "Plan a trip",
                         "gen_ai.agent.id": "planner"}),
        Call("trip-planner", 11.9, 1200, span=2, trace=1, parent=1, cost=0.02,
             attributes={"user.id": "ana", "gen_ai.agent.id": "planner",
                         "sessionlens.session.path": "plan",
                         "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "Find me a train to Lyon"}]}]',
                         "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "The 9:04 TGV arrives at 11:00."}]}]'}),
        # three minutes idle, then the next turn (drawn as a gap)
        Call("trip-planner", 8, 800, span=3, trace=2, cost=0.01, error=True,
             attributes={"user.id": "ana", "gen_ai.agent.id": "booker",
                         "sessionlens.session.path": "plan/book",
                         "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "Find me a train to Lyon"}]}, {"role": "assistant", "parts": [{"type": "text", "content": "The 9:04 TGV arrives at 11:00."}]}, {"role": "user", "parts": [{"type": "text", "content": "Book it"}]}]'}),
    ]
    calls += [Call(f"chat-{i:02d}", 20 + i, 400, span=100 + i, trace=100 + i,
                   cost=0.001 * (i + 1), attributes={"user.id": "ben" if i % 2 else "cy"})
              for i in range(8)]
    return calls


@pytest.fixture(scope="module")
def ui(chdb_url, tmp_path_factory):
    from sessionlens.storage import connect

    database = "ui_" + str(int(time.time() * 1000))[-9:]
    connect(chdb_url).command(f"CREATE DATABASE {database}")
    pipeline = start_pipeline(chdb_url, database, tmp_path_factory.mktemp("spool"), api=True)
    send(grpc_port(pipeline), _calls(), time.time_ns(), SHOP)
    url = api_url(pipeline)
    wait_until(lambda: len(httpx.get(f"{url}/v1/sessions").json()["sessions"]) == 9,
               what="the sessions")
    yield pipeline, url
    pipeline.shutdown()
    connect(chdb_url).command(f"DROP DATABASE IF EXISTS {database} SYNC")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failed page: {shot}")
    context.close()


def api(url: str, path: str, **params) -> dict:
    return httpx.get(url + path, params=params).json()


def column(page, index: int) -> list[str]:
    return page.locator(f"#session-rows tr[data-session] td:nth-child({index})").all_inner_texts()


def test_sessions_filter_sort_page_and_open_a_session(ui, page):
    _, url = ui
    page.goto(url + "/")
    expected = [r["session_id"] for r in api(url, "/v1/sessions")["sessions"]]
    assert page.locator("#session-rows tr[data-session]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)") == expected
    # a filter: the URL carries it (shareable), empty fields stay out of it
    page.fill("input[name=user]", "ben")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"/\?user=ben$"))
    assert set(column(page, 2)) == {"ben"} and len(column(page, 2)) == 4
    # a sort: cost, descending first
    page.click("th a[data-sort=cost_usd]")
    page.wait_for_url(re.compile(r"sort=-cost_usd"))
    by_cost = [r["session_id"] for r in api(url, "/v1/sessions", user="ben", sort="-cost_usd")["sessions"]]
    assert page.locator("#session-rows tr[data-session]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)") == by_cost
    # pages of 3
    page.goto(url + "/?limit=3")
    first = page.locator("#session-rows tr[data-session]").evaluate_all("rows => rows.map(r => r.dataset.session)")
    page.click("#next-page")
    second = page.locator("#session-rows tr[data-session]").evaluate_all("rows => rows.map(r => r.dataset.session)")
    assert first + second == expected[:6]
    # open a session: totals and the timeline match the API
    page.goto(url + "/")
    page.click("a[href='/sessions/trip-planner']")
    page.wait_for_url(re.compile(r"/sessions/trip-planner$"))
    detail = api(url, "/v1/sessions/trip-planner")
    assert page.inner_text("#total-calls") == str(detail["session"]["llm_calls"]) == "2"
    assert float(page.get_attribute("#total-cost", "data-usd")) == pytest.approx(detail["session"]["cost_usd"])
    rows = page.locator("#waterfall details.span")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.span)") == [s["span_id"] for s in detail["spans"]]
    # nesting: the call under the agent span is indented
    pads = page.locator("#waterfall .label").evaluate_all("ls => ls.map(l => l.style.paddingLeft)")
    assert pads == ["0px", "14px", "0px"]
    # the error call is red, the idle stretch is drawn as a gap
    assert "error" in page.get_attribute(f"details[data-span='{3:016x}']", "class")
    assert page.locator("#waterfall .gap").count() == 1
    # bars: the agent span (8 s) is wider than its 1.2 s call
    widths = page.locator("#waterfall .bar").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().width)")
    assert widths[0] > widths[1] * 4
    # a span's attributes on click, trace id copyable
    page.click(f"details[data-span='{2:016x}'] summary")
    attrs = page.locator(f"details[data-span='{2:016x}'] table.attrs")
    assert attrs.is_visible() and "plan" in attrs.inner_text()
    assert page.locator(".traces button.copy").count() == 2
    # the tree by path and the breakdowns
    assert page.locator("#path-tree tbody tr").all_inner_texts()[0].startswith("plan")
    assert "booker" in page.inner_text("#by_agent")
    # the conversation, each message once although the second call re-sent the first two
    messages = page.locator("#conversation li pre").all_inner_texts()
    assert messages == ["Find me a train to Lyon", "The 9:04 TGV arrives at 11:00.", "Book it"]


def test_overview_and_users(ui, page):
    _, url = ui
    page.goto(url + "/overview?since=1h")
    vitals = api(url, "/v1/vitals", since="1h")
    assert page.inner_text("#v-sessions") == str(vitals["sessions"]) == "9"
    assert page.inner_text("#v-calls") == str(vitals["llm_calls"])
    assert page.locator("#chart-llm_calls rect").count() >= 1
    assert page.locator("#top-sessions tbody tr").first.inner_text().startswith("Plan a trip")
    page.goto(url + "/users")
    users = [u["user_id"] for u in api(url, "/v1/users")["users"]]
    assert page.locator("#users tbody td:first-child").all_inner_texts() == users
    page.click("#users a:text-is('ben')")
    page.wait_for_url(re.compile(r"/\?user=ben$"))
    assert set(column(page, 2)) == {"ben"}


def test_a_new_session_appears_without_reload(ui, page):
    pipeline, url = ui
    page.goto(url + "/")
    page.wait_for_selector("#live:not([hidden])")
    page.evaluate("window.__sameDocument = true")
    send(grpc_port(pipeline), [Call("brand-new", 0, 100, span=5000, trace=5000, cost=0.5,
                                    attributes={"user.id": "dee"})], time.time_ns(), SHOP)
    page.wait_for_selector("#session-rows tr[data-session='brand-new']", timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.locator("#session-rows tr[data-session]").first.get_attribute("data-session") == "brand-new"
