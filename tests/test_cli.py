"""``sessionlens sessions …`` and ``sessionlens users`` against a real collector.

One in-process collector with its sessions API (bearer tokens on) receives a known set of
spans over OTLP/gRPC; every command runs through ``sessionlens.__main__.main`` (the tail and
the locked store in a process of their own) and is checked against the API's own answer.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from api_support import Call, send, wait_until
from collector_setup import api_url, grpc_port, start_pipeline
from sessionlens import conventions as conv
from sessionlens.__main__ import main
from sessionlens.cli import render

TOKEN, PROJECT = "tok-cli-acme", "acme"
RESOURCE = {conv.SERVICE_NAME: "support-bot", conv.ENVIRONMENT: "prod"}
ALICE = {conv.USER_ID: "alice", conv.AGENT_ID: "planner", conv.RUN_ID: "run-1"}
SESSIONS = {
    "cli-1": [
        Call("cli-1", 10, 9000, span=1, trace=1, operation="invoke_agent", attributes=ALICE),
        Call("cli-1", 9.9, 1200, span=2, trace=1, parent=1, input_tokens=1000, output_tokens=100,
             cost=0.0035, attributes={**ALICE, conv.SESSION_PATH: "plan/draft",
                                      conv.SESSION_NAME: "Ticket \x1b[31m42"}),
        # the httpx instrumentation's span under the LLM call: folded by `show`
        Call("cli-1", 9.89, 1100, span=3, trace=1, parent=2, operation="", name="POST",
             attributes={**ALICE, conv.HTTP_REQUEST_METHOD: "POST"}),
        Call("cli-1", 9.8, 300, span=4, trace=1, parent=1, model="gpt-4o-mini", input_tokens=50,
             output_tokens=5, cost=0.0001, error=True, attributes=ALICE),
    ],
    "cli-2": [
        Call("cli-2", 5, 800, span=10, trace=2, input_tokens=10, output_tokens=2, cost=0.25,
             attributes={conv.USER_ID: "bob"}),
    ],
}


def api_get(base: str, path: str, token: str | None = TOKEN, **params):
    query = urllib.parse.urlencode(params)
    request = urllib.request.Request(f"{base}{path}" + (f"?{query}" if query else ""))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def collector(chdb_url, tmp_path_factory):
    import uuid

    database = "cli_" + uuid.uuid4().hex[:8]
    pipeline = start_pipeline(chdb_url, database, tmp_path_factory.mktemp("spool"), api=True,
                              tokens={TOKEN: PROJECT})
    base = api_url(pipeline)
    now_ns = time.time_ns()
    for calls in SESSIONS.values():
        send(grpc_port(pipeline), calls, now_ns, RESOURCE, token=TOKEN)

    def stored():
        rows = api_get(base, "/v1/sessions")["sessions"]
        calls = {r["session_id"]: r["llm_calls"] for r in rows}
        return calls == {"cli-1": 2, "cli-2": 1}

    wait_until(stored, what="the known sessions in the API")
    yield {"api": base, "pipeline": pipeline, "database": database, "chdb_url": chdb_url,
           "grpc": grpc_port(pipeline), "now_ns": now_ns}
    pipeline.shutdown()


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch):
    # output that is not a terminal takes its width from COLUMNS (default 200): fixed here,
    # so a test run in a narrow terminal reads the same rows
    monkeypatch.setenv("COLUMNS", "200")


def cli(capsys, *args: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    argv = list(args) + (["--token", token] if token else [])
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def section(out: str, title: str) -> list[str]:
    """The lines of the table titled ``title``, up to the next blank line."""
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.strip() == title)) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def api_args(collector) -> list[str]:
    return ["--api", collector["api"]]


def test_list_json_is_the_apis_json(collector, capsys):
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector), "--json")
    assert code == 0
    assert json.loads(out) == api_get(collector["api"], "/v1/sessions", sort="-last_seen", limit=50)


def test_list_table_shows_the_apis_figures(collector, capsys):
    rows = {r["session_id"]: r for r in api_get(collector["api"], "/v1/sessions")["sessions"]}
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector))
    assert code == 0 and "\x1b" not in out
    for session_id, row in rows.items():
        (line,) = [line for line in out.splitlines() if line.startswith(session_id + " ")]
        assert render.usd(row["cost_usd"]) in line
        assert f"{row['input_tokens']}→{row['output_tokens']}" in line
        assert row["user_id"] in line
    assert "Ticket \\x1b[31m42" in out  # the escape sequence from a span is shown, not run


def test_list_filters_and_sort_are_the_apis(collector, capsys):
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector), "--user", "alice", "--json")
    assert [r["session_id"] for r in json.loads(out)["sessions"]] == ["cli-1"]
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector), "--sort=-cost_usd",
                       "--min-cost", "0.1", "--json")
    assert [r["session_id"] for r in json.loads(out)["sessions"]] == ["cli-2"]
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector), "--limit", "1")
    assert code == 0 and "more: --cursor " in out
    cursor = out.rsplit("--cursor ", 1)[1].strip()
    code, out, _ = cli(capsys, "sessions", "list", *api_args(collector), "--limit", "1",
                       "--cursor", cursor, "--json")
    first = api_get(collector["api"], "/v1/sessions", limit=1)["sessions"][0]["session_id"]
    (second,) = json.loads(out)["sessions"]
    assert second["session_id"] != first and second["session_id"] in ("cli-1", "cli-2")


def test_show_json_and_table(collector, capsys):
    detail = api_get(collector["api"], "/v1/sessions/cli-1", spans_limit=500)
    code, out, _ = cli(capsys, "sessions", "show", "cli-1", *api_args(collector), "--json")
    assert code == 0 and json.loads(out) == detail
    code, out, _ = cli(capsys, "sessions", "show", "cli-1", *api_args(collector))
    assert code == 0 and "\x1b" not in out
    session = detail["session"]
    for figure in (render.usd(session["cost_usd"]), render.tokens(session),
                   render.percent(session["success_rate"]), render.seconds(session["duration_s"])):
        assert figure in out
    for name in ("by_agent", "by_model", "by_path", "by_run"):
        table = section(out, "cost " + name.replace("_", " "))
        calls = [r for r in detail["breakdown"][name] if r["llm_calls"]]
        assert calls and len(table) == len(calls) + 1, name  # a header, a row per key with calls
        for row, line in zip(calls, table[1:]):
            assert line.split()[0] == (row["key"] or "(none)")
            assert render.usd(row["cost_usd"]) in line and f" {row['llm_calls']} " in line
            assert render.tokens(row) in line and render.ms(row["avg_latency_ms"]) in line
    timeline = out.split("waterfall", 1)[1]
    assert "+1 http" in timeline and "POST" not in timeline
    assert "error" in timeline and "█" in timeline
    code, out, _ = cli(capsys, "sessions", "show", "cli-1", *api_args(collector), "--all-spans")
    assert "POST" in out.split("waterfall", 1)[1]


def test_vitals_json_and_table(collector, capsys):
    since = datetime.fromtimestamp(collector["now_ns"] / 1e9, timezone.utc) - timedelta(hours=1)
    since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    figures = api_get(collector["api"], "/v1/vitals", since=since_text)
    code, out, _ = cli(capsys, "sessions", "vitals", *api_args(collector), "--since", since_text, "--json")
    assert code == 0 and json.loads(out) == figures
    assert figures["sessions"] == 2 and figures["llm_calls"] == 3
    code, out, _ = cli(capsys, "sessions", "vitals", *api_args(collector), "--since", since_text,
                       "--interval", "1h")
    assert render.usd(figures["total_cost_usd"]) in out and "over time" in out
    assert render.percent(figures["error_rate"]) in out


def test_users_json_and_table(collector, capsys):
    users = api_get(collector["api"], "/v1/users", sort="-last_seen", limit=50)
    code, out, _ = cli(capsys, "users", *api_args(collector), "--json")
    assert code == 0 and json.loads(out) == users
    code, out, _ = cli(capsys, "users", *api_args(collector), "--sort=-cost_usd")
    lines = [line for line in out.splitlines() if line.startswith(("alice ", "bob "))]
    assert [line.split()[0] for line in lines] == ["bob", "alice"]
    by_user = {u["user_id"]: u for u in users["users"]}
    assert render.usd(by_user["bob"]["cost_usd"]) in lines[0]


def test_clickhouse_mode_answers_what_the_api_answers(collector, capsys):
    direct = ["--clickhouse", collector["chdb_url"], "--database", collector["database"],
              "--project", PROJECT, "--json"]
    for command, path, params in (
        (["sessions", "list"], "/v1/sessions", {}),
        (["sessions", "show", "cli-1"], "/v1/sessions/cli-1", {}),
        (["users"], "/v1/users", {}),
    ):
        code, out, err = cli(capsys, *command, *direct, token=None)
        assert code == 0, err
        assert json.loads(out) == api_get(collector["api"], path, **params), command


@pytest.mark.parametrize("as_json", [True, False])
def test_tail_follows_new_sessions(collector, as_json):
    session_id = f"cli-tail-{'json' if as_json else 'table'}"
    env = {**os.environ, "SESSIONLENS_TOKEN": TOKEN, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionlens", "sessions", "tail", "--api", collector["api"],
         *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        time.sleep(1.0)  # subscribed before the spans arrive
        send(collector["grpc"], [Call(session_id, 0, 100, span=50 + as_json, trace=50 + as_json,
                                      cost=0.01, attributes={conv.USER_ID: "carol\x1b[2J"})],
             time.time_ns(), RESOURCE, token=TOKEN)
        lines: queue.Queue[str] = queue.Queue()
        # readline() blocks: read on a thread so the deadline holds when no line comes
        threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
        deadline, line = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if session_id in line:
                break
        assert line and session_id in line, process.stderr.read() if process.poll() is not None else ""
        row = api_get(collector["api"], f"/v1/sessions/{session_id}")["session"]
        if as_json:
            event = json.loads(line)
            assert event["user_id"] == row["user_id"] == "carol\x1b[2J" and event["llm_calls"] == 1
        else:
            assert "\x1b" not in line and "user carol\\x1b[2J" in line
            assert f"cost {render.usd(row['cost_usd'])}" in line and "calls 1" in line
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the errors a user can hit ------------------------------------------------------------


def test_missing_and_refused_token(collector, capsys, monkeypatch):
    monkeypatch.delenv("SESSIONLENS_TOKEN", raising=False)
    code, out, err = cli(capsys, "sessions", "list", *api_args(collector), token=None)
    assert code == 1 and out == ""
    assert "needs a token (401)" in err and "SESSIONLENS_TOKEN" in err
    code, _, err = cli(capsys, "sessions", "list", *api_args(collector), token="wrong")
    assert code == 1 and "refused the token (401)" in err and "wrong" not in err
    monkeypatch.setenv("SESSIONLENS_TOKEN", TOKEN)
    code, out, _ = cli(capsys, "users", *api_args(collector), "--json", token=None)
    assert code == 0 and json.loads(out)["users"]


def test_nothing_listening(capsys):
    from collector_setup import free_port

    port = free_port()
    code, out, err = cli(capsys, "sessions", "vitals", "--api", f"http://127.0.0.1:{port}")
    assert code == 1 and out == ""
    assert f"nothing is listening at http://127.0.0.1:{port}" in err
    assert "'make run'" in err and "'sessionlens collector'" in err


def test_unknown_session_and_bad_parameters(collector, capsys):
    code, _, err = cli(capsys, "sessions", "show", "no-such\x1b]0;x", *api_args(collector))
    assert code == 1 and "no session" in err and "\x1b" not in err
    code, _, err = cli(capsys, "sessions", "list", *api_args(collector), "--since", "yesterday")
    assert code == 2 and "since='yesterday'" in err and "24h" in err


def test_embedded_store_locked_by_a_running_collector(collector):
    """The collector (this test process) holds the embedded store: a second process cannot
    open it, and the CLI says to use the API instead — not "is ClickHouse running?"."""
    result = subprocess.run(
        [sys.executable, "-m", "sessionlens", "sessions", "list", "--clickhouse", collector["chdb_url"],
         "--database", collector["database"]],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sessionlens: the embedded ClickHouse store at ")
    assert "open in another process" in last and "sessions API instead" in last
    assert "is ClickHouse running" not in result.stderr
