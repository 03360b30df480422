"""The whole product on one machine: the real openai and anthropic SDKs, instrumented, send
OTLP/gRPC to the collector, which assigns sessions, prices the calls and stores them; the
views then show the sessions. Every part is real but the LLM provider."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import anthropic
import openai
import pytest
from collector_setup import grpc_port, start_pipeline
from instr_fake_llm import RESPONSE_MODEL_SUFFIX, USAGE_ANTHROPIC, USAGE_OPENAI
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import sessionlens
from sessionlens.storage import connect
from sessionlens.instrumentation import SessionLensInstrumentor
from sessionlens.instrumentation.finisher import FINISHER
from sessionlens.schema.price_seed import seed_rows
from sessionlens.schema.prices import PriceBook, cost_usd

pytest_plugins = ("instr_fixtures",)

MESSAGES = [{"role": "user", "content": "Where is my refund?"}]


@pytest.fixture
def collector(chdb_url, database, tmp_path):
    pipeline = start_pipeline(chdb_url, database, tmp_path / "spool")
    yield pipeline
    pipeline.shutdown()


def _rows(client, sql: str, **parameters) -> list[dict]:
    result = client.query(sql, parameters=parameters)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def test_instrumented_sdk_calls_become_sessions(server, collector, chdb_url, database):
    port = grpc_port(collector)
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True))
    )
    instrumentor = SessionLensInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
    claude = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    try:
        with sessionlens.session(id="ticket-1", name="refund", user_id="alice"):
            with sessionlens.run(run_id="run-1", agent_id="triage"):
                oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                stream = oai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            claude.messages.create(
                model="claude-3-5-sonnet-20241022", max_tokens=64, messages=MESSAGES
            )
        # No session given: the user header the app already sends makes one (auto:user).
        oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-User-ID": "bob"}
        )
        FINISHER.flush()
        provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    client = connect(chdb_url, database=database)
    # A table and the views fed from it become visible one after the other: wait on the view.
    deadline = time.monotonic() + 30
    while client.query("SELECT sum(llm_calls) FROM session_list").result_rows[0][0] < 4:
        assert time.monotonic() < deadline, "the calls did not reach session_list"
        time.sleep(0.1)

    sessions = {row["session_id"]: row for row in _rows(client, "SELECT * FROM session_list")}
    assert len(sessions) == 2
    ticket = sessions["ticket-1"]
    anthropic_input = sum(USAGE_ANTHROPIC[k] for k in USAGE_ANTHROPIC if k.endswith("input_tokens"))
    assert ticket["source"] == "explicit"
    assert (ticket["session_name"], ticket["user_id"]) == ("refund", "alice")
    assert ticket["service_name"] == "support-bot"
    assert ticket["llm_calls"] == 3 and ticket["runs"] == 1
    assert list(ticket["agents"]) == ["triage"]
    openai_models = [m + RESPONSE_MODEL_SUFFIX for m in ("gpt-4o", "gpt-4o-mini")]
    assert sorted(ticket["models"]) == sorted([*openai_models, "claude-3-5-sonnet-20241022"])
    assert ticket["input_tokens"] == 2 * USAGE_OPENAI["prompt_tokens"] + anthropic_input
    assert ticket["output_tokens"] == 2 * USAGE_OPENAI["completion_tokens"] + USAGE_ANTHROPIC["output_tokens"]
    book, today = PriceBook(seed_rows()), datetime.now(timezone.utc).date()
    cached_openai = USAGE_OPENAI["prompt_tokens_details"]["cached_tokens"]
    expected_cost = sum(
        cost_usd(book.price("openai", model, "", today), USAGE_OPENAI["prompt_tokens"],
                 USAGE_OPENAI["completion_tokens"], cached_openai)
        for model in openai_models
    ) + cost_usd(
        book.price("anthropic", "claude-3-5-sonnet-20241022", "", today),
        anthropic_input,
        USAGE_ANTHROPIC["output_tokens"],
        USAGE_ANTHROPIC["cache_read_input_tokens"],
        USAGE_ANTHROPIC.get("cache_creation_input_tokens", 0),
    )
    assert ticket["cost_usd"] == pytest.approx(expected_cost, rel=1e-6)
    assert ticket["errors"] == 0 and ticket["status"] == "active"

    bob = next(row for sid, row in sessions.items() if sid != "ticket-1")
    assert (bob["source"], bob["user_id"], bob["llm_calls"]) == ("auto:user", "bob", 1)

    detail = _rows(client, "SELECT * FROM session_detail(session_id={id:String}, project='')", id="ticket-1")
    assert [row["model"] for row in detail] == [*openai_models, "claude-3-5-sonnet-20241022"]
    assert [row["timestamp"] for row in detail] == sorted(row["timestamp"] for row in detail)
    assert [row["run_id"] for row in detail] == ["run-1", "run-1", ""]
    assert [row["provider"] for row in detail] == ["openai", "openai", "anthropic"]
    assert detail[1]["time_to_first_chunk_ms"] > 0
    assert detail[0]["time_to_first_chunk_ms"] is None  # not streamed: no first chunk
    client.close()
