"""The end-to-end tour (`make demo`): two apps under ``opentelemetry-instrument``, the
collector, the views.

1. starts ``sessionlens collector`` with the repository's otel-config.yaml on a fresh
   embedded store in ./data/demo (free ports; the store of ``make run`` is not touched);
2. runs two apps the way the README tells users to — unchanged, under the real
   ``opentelemetry-instrument`` launcher (so the httpx instrumentation is on too) — against
   the fake LLM server the tests use (no API key, no network):
   ``support_bot.py`` (the real ``openai`` and ``anthropic`` SDKs: one ticket with an
   explicit session and two agent runs, one user known only by the ``X-User-ID`` header,
   one failing call) and ``web_chat.py`` (a FastAPI app: two anonymous visitors and two
   logged-in users behind one address, whose ids the app records only on its request
   spans — the collector tells all four apart);
3. stops the collector (it drains its spool into ClickHouse), prints what the views show —
   the session list, the ticket's spans in order, the vitals — and checks the figures
   against what the apps did (exit status 1 when one does not match), then says how to
   reopen the demo's store with the collector to browse it in the web UI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake LLM server lives with the tests

from instr_fake_llm import USAGE_ANTHROPIC, USAGE_OPENAI, FakeLLMServer  # noqa: E402
from web_chat import visit  # noqa: E402

from sessionlens.storage import connect  # noqa: E402

EXAMPLES = ROOT / "examples"
LAUNCHER = Path(sys.executable).with_name("opentelemetry-instrument")
VISITORS = [  # (source address, browser, logged-in user)
    ("127.0.0.2", "Mozilla/5.0 (X11; Linux) Firefox/140", None),
    ("127.0.0.3", "Mozilla/5.0 (Macintosh) Safari/19", None),
    ("127.0.0.4", "Mozilla/5.0 (Windows NT 10.0) Chrome/141", "carol"),
    ("127.0.0.4", "Mozilla/5.0 (Windows NT 10.0) Chrome/141", "dave"),
]
QUESTIONS_EACH = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_collector(workdir: Path, grpc_port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        SESSIONLENS_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
        SESSIONLENS_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{free_port()}",
        SESSIONLENS_API_ENDPOINT=f"127.0.0.1:{free_port()}",
        SESSIONLENS_CLICKHOUSE_URL=f"chdb://{workdir / 'clickhouse'}",
        SESSIONLENS_SPOOL_DIR=str(workdir / "spool"),
    )
    command = [sys.executable, "-m", "sessionlens", "collector", "--config", str(ROOT / "otel-config.yaml")]
    collector = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", grpc_port), timeout=1).close()
            return collector
        except OSError:
            if collector.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo: the collector did not start (see its output above)") from None
            time.sleep(0.2)


def app_env(service: str, grpc_port: int) -> dict[str, str]:
    """What a user sets to run an app under the launcher (README, "Instrument your app")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_SERVICE_NAME=service, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}")
    return env


def run_support_bot(llm_url: str, grpc_port: int) -> None:
    command = [str(LAUNCHER), sys.executable, str(EXAMPLES / "support_bot.py"), llm_url]
    subprocess.run(command, env=app_env("support-bot", grpc_port), check=True, timeout=120)


def run_web_chat(llm_url: str, grpc_port: int) -> None:
    port = free_port()
    command = [str(LAUNCHER), sys.executable, str(EXAMPLES / "web_chat.py"), str(port), llm_url, "0.2"]
    env = {**app_env("web-chat", grpc_port), "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "health"}
    app = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if app.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("demo: the web app did not start (see its output above)") from None
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        threads = [threading.Thread(target=visit, args=(base, *v, QUESTIONS_EACH)) for v in VISITORS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        app.terminate()  # the SDK exports what is left on its way out
        app.wait(timeout=60)


def print_table(title: str, result, columns: list[str]) -> None:
    print(f"\n{title}")
    rows = [[_cell(row[result.column_names.index(c)]) for c in columns] for row in result.result_rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def show_views(store: Path) -> None:
    client = connect(f"chdb://{store}", database="otel")
    page = client.query(
        "SELECT * FROM session_list_page(project='', user='', environment='', status='', before='', limit=20)"
    )
    print_table(
        "session_list_page — one row per session, newest first",
        page,
        ["session_id", "source", "session_name", "user_id", "llm_calls", "agents", "input_tokens",
         "output_tokens", "cost_usd", "errors", "status"],
    )
    detail = client.query(
        "SELECT * FROM session_detail(session_id={id:String}, project='')", parameters={"id": "ticket-4711"}
    )
    print_table(
        "session_detail(session_id='ticket-4711', project='') — its spans in time order",
        detail,
        ["span_name", "agent_id", "provider", "model", "input_tokens", "output_tokens", "cost_usd",
         "duration_ms", "time_to_first_chunk_ms", "status"],
    )
    vitals = client.query(
        "SELECT * FROM session_vitals(since='', until='', project='', environment='', service='', agent='', user='')"
    )
    print_table(
        "session_vitals — all time",
        vitals,
        ["sessions", "users", "llm_calls", "avg_calls_per_session", "total_cost_usd", "error_rate", "total_tokens"],
    )
    client.close()


def expected_sessions() -> list[tuple[str, str, int, int]]:
    """(source, user, LLM calls, errors) of every session the two apps made."""
    web = [("auto:fingerprint", "", QUESTIONS_EACH, 0) for _, _, user in VISITORS if user is None]
    web += [("auto:user", user, QUESTIONS_EACH, 0) for _, _, user in VISITORS if user is not None]
    return sorted([("explicit", "alice", 3, 0), ("auto:user", "bob", 3, 1), *web])


def check_figures(store: Path) -> list[str]:
    """What the views show that differs from what the apps did (nothing, when all is right)."""
    client = connect(f"chdb://{store}", database="otel")
    rows = client.query(
        "SELECT session_id, source, user_id, llm_calls, errors, input_tokens, output_tokens FROM session_list"
    ).result_rows
    client.close()
    wrong = []
    # Spans with no LLM call (a web request's body read, exported before the app knew its
    # user) may form a session of their own: not one of the apps' conversations.
    got = sorted((source, user, calls, errors) for _, source, user, calls, errors, _, _ in rows if calls)
    if any(not calls for _, _, _, calls, _, _, _ in rows):
        print("\n(a session with no LLM call holds the body reads of logged-in users' requests, exported"
              " before the app knew who sent them: README, Automatic sessions)")
    if got != expected_sessions():
        wrong.append(f"sessions (source, user, calls, errors): {got}, expected {expected_sessions()}")
    anthropic_input = sum(v for k, v in USAGE_ANTHROPIC.items() if k.endswith("input_tokens"))
    ticket = {
        "input_tokens": 2 * USAGE_OPENAI["prompt_tokens"] + anthropic_input,
        "output_tokens": 2 * USAGE_OPENAI["completion_tokens"] + USAGE_ANTHROPIC["output_tokens"],
    }
    for sid, _, _, _, _, input_tokens, output_tokens in rows:
        if sid == "ticket-4711" and (input_tokens, output_tokens) != tuple(ticket.values()):
            wrong.append(f"ticket-4711 tokens {(input_tokens, output_tokens)}, expected {tuple(ticket.values())}")
    return wrong


def main() -> int:
    workdir, grpc_port = ROOT / "data" / "demo", free_port()
    shutil.rmtree(workdir, ignore_errors=True)  # each tour starts from an empty store
    collector = start_collector(workdir, grpc_port)
    try:
        with FakeLLMServer() as llm:
            run_support_bot(llm.url, grpc_port)
            run_web_chat(llm.url, grpc_port)
    finally:
        collector.send_signal(signal.SIGTERM)  # drains the spool into ClickHouse
        collector.wait(timeout=120)
    # Embedded ClickHouse is single-process: read the store once the collector is gone.
    show_views(workdir / "clickhouse")
    wrong = check_figures(workdir / "clickhouse")
    print("\nfigures check: " + ("every figure matches what the apps did" if not wrong else "MISMATCH"))
    for line in wrong:
        print("  " + line)
    print(
        "\nBrowse these sessions in the web UI: reopen the demo's store with the collector,\n"
        f"  SESSIONLENS_CLICKHOUSE_URL=chdb://{workdir / 'clickhouse'} "
        f"SESSIONLENS_SPOOL_DIR={workdir / 'spool'} make run\n"
        "then open http://127.0.0.1:4319/ (or: curl http://127.0.0.1:4319/v1/sessions)."
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
