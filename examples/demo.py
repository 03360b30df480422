"""The end-to-end tour (`make demo`): an instrumented support bot, the collector, the views.

1. starts ``sessionlens collector`` with the repository's otel-config.yaml on a fresh
   embedded store in a temporary directory (free ports, nothing of ./data touched);
2. runs a small support bot with the real ``openai`` and ``anthropic`` SDKs against the
   fake LLM server the tests use (no API key, no network): one ticket with an explicit
   session and two agent runs, one user who gives no session at all (an automatic session
   from the ``X-User-ID`` header), and one call that fails;
3. stops the collector (it drains its spool into ClickHouse) and prints what the views
   show: the session list, the ticket's spans in order, and the vitals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake LLM server lives with the tests

import anthropic  # noqa: E402
import openai  # noqa: E402
from instr_fake_llm import FakeLLMServer  # noqa: E402
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

import sessionlens  # noqa: E402
from sessionlens.collector.storage import connect  # noqa: E402
from sessionlens.instrumentation import SessionLensInstrumentor  # noqa: E402

QUESTION = [{"role": "user", "content": "My order arrived broken. Can I get a refund?"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_collector(workdir: Path, grpc_port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        SESSIONLENS_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
        SESSIONLENS_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{free_port()}",
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
                raise SystemExit("demo: the collector did not start (see its output above)")
            time.sleep(0.2)


def support_bot(llm_url: str) -> None:
    """What an application does; only the two `with` blocks are sessionlens-specific."""
    gpt = openai.OpenAI(base_url=llm_url + "/v1", api_key="demo", max_retries=0)
    claude = anthropic.Anthropic(base_url=llm_url, api_key="demo", max_retries=0)

    with sessionlens.session(id="ticket-4711", name="refund request", user_id="alice"):
        with sessionlens.run(agent_id="triage", agent_name="Triage"):
            gpt.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
        with sessionlens.run(agent_id="refunds", agent_name="Refunds"):
            stream = gpt.chat.completions.create(
                model="gpt-4o", messages=QUESTION, stream=True, stream_options={"include_usage": True}
            )
            for _ in stream:
                pass
            claude.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=256, messages=QUESTION)

    # No session in the code: the header this app already sends puts bob's calls in one.
    for _ in range(2):
        gpt.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, extra_headers={"X-User-ID": "bob"})
    try:  # the provider fails: the span records the error, the session counts it
        gpt.chat.completions.create(model="fail-500", messages=QUESTION, extra_headers={"X-User-ID": "bob"})
    except openai.InternalServerError:
        pass


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
    detail = client.query("SELECT * FROM session_detail(session_id={id:String})", parameters={"id": "ticket-4711"})
    print_table(
        "session_detail(session_id='ticket-4711') — its spans in time order",
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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sessionlens-demo-") as tmp:
        workdir, grpc_port = Path(tmp), free_port()
        collector = start_collector(workdir, grpc_port)
        provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True))
        )
        SessionLensInstrumentor().instrument(tracer_provider=provider)
        try:
            with FakeLLMServer() as llm:
                support_bot(llm.url)
            provider.shutdown()  # ends and exports every span
        finally:
            collector.send_signal(signal.SIGTERM)  # drains the spool into ClickHouse
            collector.wait(timeout=120)
        # Embedded ClickHouse is single-process: read the store once the collector is gone.
        show_views(workdir / "clickhouse")


if __name__ == "__main__":
    main()
