"""A support bot as users write one: the real ``openai`` and ``anthropic`` SDKs, two
``sessionlens`` context managers, no OpenTelemetry set-up in the code — run it under the
launcher, as the README says:

    OTEL_SERVICE_NAME=support-bot opentelemetry-instrument python examples/support_bot.py LLM_URL

One ticket with an explicit session and two agent runs; one user who gives no session at
all (an automatic session from the ``X-User-ID`` header the app already sends); one call
that fails.
"""

from __future__ import annotations

import sys

import anthropic
import openai

import sessionlens

QUESTION = [{"role": "user", "content": "My order arrived broken. Can I get a refund?"}]


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


if __name__ == "__main__":
    support_bot(sys.argv[1])
