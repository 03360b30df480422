"""A FastAPI chat app as users write one: run under ``opentelemetry-instrument``, nothing
of sessionlens in its code. Logged-in users are recorded on the request's span (the
OpenTelemetry way: ``enduser.id``), never passed to the LLM call. Each request pauses
twice (a retrieval and a moderation step); with pauses longer than the SDK's export delay,
a request's first spans and its LLM span leave before its SERVER span does.

    opentelemetry-instrument python examples/web_chat.py PORT LLM_URL PAUSE_SECONDS

``visit`` is a visitor of the app (for the demo and the tests).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import openai
import uvicorn
from fastapi import Depends, FastAPI, Header
from opentelemetry import trace



@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    # uvicorn re-raises SIGTERM once it has shut down, so the SDK's exit hook never runs:
    # export the last spans now, or they are lost with the process.
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


app = FastAPI(lifespan=lifespan)
llm: openai.AsyncOpenAI | None = None  # set by main
pause = 0.0


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
    assert llm is not None
    await asyncio.sleep(pause)  # retrieval
    reply = await llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": body["q"]}])
    await asyncio.sleep(pause)  # moderation
    return {"reply": reply.choices[0].message.content or ""}


def visit(base_url: str, address: str, agent: str, user: str | None = None, requests: int = 2) -> list[str]:
    """``requests`` questions from one visitor: its own source address (any 127.0.0.x on
    loopback) and browser, logged in as ``user`` if given; the replies, or what failed."""
    headers = {"User-Agent": agent, **({"Authorization": f"Bearer {user}"} if user else {})}
    transport = httpx.HTTPTransport(local_address=address)
    replies = []
    with httpx.Client(transport=transport, base_url=base_url, timeout=30) as client:
        for n in range(requests):
            reply = client.post("/chat", json={"q": f"question {n}"}, headers=headers)
            replies.append(reply.json()["reply"] if reply.status_code == 200 else f"HTTP {reply.status_code}")
    return replies


def main(argv: list[str]) -> None:
    global llm, pause
    port, llm_url, pause = int(argv[0]), argv[1], float(argv[2])
    llm = openai.AsyncOpenAI(base_url=llm_url + "/v1", api_key="demo", max_retries=0)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
