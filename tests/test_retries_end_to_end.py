"""What counts, end to end (docs/counting.md): the real openai SDK retrying under the real
``opentelemetry-instrument`` launcher (httpx instrumentation on, as users run it, so every
attempt also has its ``POST`` transport span), through the real collector into the views.
A call that succeeds after a 429 is one call, one retry and no error; a call that fails
after all its retries is one call and one error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from collector_setup import grpc_port, start_pipeline
from instr_fake_llm import FakeLLMServer

from sessionlens.storage import connect

APP = textwrap.dedent("""
    import sys

    import openai
    import sessionlens

    gpt = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="k", max_retries=2)
    ask = [{"role": "user", "content": "Where is my refund?"}]
    with sessionlens.session(id="retry-then-ok"):
        gpt.chat.completions.create(model="flaky-gpt-4o-mini", messages=ask)
    with sessionlens.session(id="retries-exhausted"):
        try:
            gpt.chat.completions.create(model="fail-429", messages=ask)
        except openai.RateLimitError:
            pass
""")
FIGURES = "llm_calls, retries, errors, success_rate"


@pytest.fixture
def sessions(chdb_url, database, tmp_path):
    """Run the app under the launcher; the two sessions' rows and their spans as stored."""
    pipeline = start_pipeline(chdb_url, database, tmp_path / "spool")
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_SERVICE_NAME="retrying-app",
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port(pipeline)}")
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    try:
        with FakeLLMServer() as llm:
            run = subprocess.run([str(launcher), sys.executable, str(app), llm.url],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        client = connect(chdb_url, database=database)
        deadline = time.monotonic() + 30
        while True:
            result = client.query(f"SELECT session_id, {FIGURES} FROM session_list ORDER BY session_id")
            rows = {r[0]: dict(zip(result.column_names[1:], r[1:])) for r in result.result_rows}
            if sum(r["llm_calls"] + r["retries"] for r in rows.values()) >= 5:
                break
            assert time.monotonic() < deadline, (rows, run.stderr[-3000:])
            time.sleep(0.2)
        spans = {
            sid: client.query("SELECT span_name, resend_count, is_transport, status FROM session_detail"
                              "(session_id = {s:String}, project = '')", parameters={"s": sid}).result_rows
            for sid in rows
        }
        client.close()
    finally:
        pipeline.shutdown()
    return rows, spans


def test_retried_calls_count_once_and_errors_only_when_the_last_attempt_fails(sessions):
    rows, spans = sessions
    assert rows["retry-then-ok"] == {"llm_calls": 1, "retries": 1, "errors": 0, "success_rate": 1.0}
    assert rows["retries-exhausted"] == {"llm_calls": 1, "retries": 2, "errors": 1, "success_rate": 0.0}
    # every attempt is an LLM span (resend_count 0, 1, 2 …) with its own transport span,
    # which the detail marks so surfaces fold it
    ok, exhausted = spans["retry-then-ok"], spans["retries-exhausted"]
    assert sorted(r[1] for r in ok if not r[2]) == [0, 1]
    assert sorted(r[1] for r in exhausted if not r[2]) == [0, 1, 2]
    assert sum(r[2] for r in ok) == 2 and sum(r[2] for r in exhausted) == 3
