"""A FastAPI chat app as users write one: run under ``opentelemetry-instrument``, nothing
of sessionlens in its code. Logged-in users are recorded on the request's span (the
OpenTelemetry way: ``enduser.id``), never passed to the LLM call. Each request is slower
than the SDK's export batch, so its first spans and its LLM span leave before its SERVER
span does.

    opentelemetry-instrument python web_app.py PORT LLM_URL PAUSE_SECONDS
"""

from __future__ import annotations

import asyncio
import sys

import openai
import uvicorn
from fastapi import Depends, FastAPI, Header
from opentelemetry import trace

PORT, LLM_URL, PAUSE = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])

app = FastAPI()
llm = openai.AsyncOpenAI(base_url=LLM_URL + "/v1", api_key="k", max_retries=0)


async def current_user(authorization: str | None = Header(default=None)) -> str | None:
    """The app's own auth: the user goes on the request's span, nowhere else."""
    if authorization and authorization.startswith("Bearer "):
        user = authorization.removeprefix("Bearer ")
        trace.get_current_span().set_attribute("enduser.id", user)
        return user
    return None


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/chat")
async def chat(body: dict[str, str], user: str | None = Depends(current_user)) -> dict[str, str]:
    await asyncio.sleep(PAUSE)  # e.g. a retrieval step: the body's spans are exported meanwhile
    reply = await llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": body["q"]}])
    await asyncio.sleep(PAUSE)  # e.g. a moderation step: the LLM span is exported meanwhile
    return {"reply": reply.choices[0].message.content or ""}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
