"""Micro-benchmark of the normalize, autosession and cost processors.

Prints spans/s per processor (one thread, batches of 512) on realistic LLM spans with
~16 attributes, half carrying an explicit session, half a mix of aliased names; then the
three in a row, called directly and as the pipeline wires them (consumers).
Run: ``.venv/bin/python bench/processors.py``.
"""

from __future__ import annotations

import random
import time

from sessionlens import conventions as c
from sessionlens.collector.component import Settings
from sessionlens.collector.pdata import Batch, Span
from sessionlens.processors import autosession, cost, normalize

SPANS = 200_000
BATCH = 512


def make_spans(n: int) -> list[Span]:
    rng = random.Random(1)
    resources = [
        {c.SERVICE_NAME: f"svc-{i}", c.SERVICE_INSTANCE_ID: f"inst-{i}", c.HOST_NAME: "h",
         c.PROCESS_PID: str(1000 + i), "telemetry.sdk.language": "python",
         "telemetry.sdk.name": "opentelemetry", "deployment.environment": "prod"}
        for i in range(8)
    ]
    start = time.time_ns()
    spans = []
    for i in range(n):
        trace = i // 4
        attrs = {
            c.OPERATION: "chat",
            c.REQUEST_MODEL: "gpt-4o-mini",
            c.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            c.RESPONSE_ID: f"chatcmpl-{i}",
            c.FINISH_REASONS: '["stop"]',
            c.OUTPUT_TOKENS: str(rng.randint(10, 500)),
            c.REQUEST_TEMPERATURE: "0.7",
            c.REQUEST_MAX_TOKENS: "1024",
            c.SERVER_ADDRESS: "api.openai.com",
            c.SERVER_PORT: "443",
            c.USER_ID: f"user-{trace % 1000}",
            c.RUN_ID: f"run-{trace}",
            c.AGENT_ID: "planner",
            c.REQUEST_ID: f"req-{i}",
        }
        if trace % 2:
            attrs[c.SESSION_ID] = f"session-{trace % 500}"
            attrs["gen_ai.system"] = "openai"
            attrs[c.INPUT_TOKENS] = str(rng.randint(100, 4000))
        else:
            attrs[c.PROVIDER] = "openai"
            attrs["gen_ai.usage.prompt_tokens"] = str(rng.randint(100, 4000))
        t0 = start + i * 1_000_000
        spans.append(Span(trace.to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), b"",
                          "chat gpt-4o-mini", 3, t0, t0 + 800_000_000, attrs,
                          resources[trace % 8]))
    return spans


def fresh(spans: list[Span]) -> list[Span]:
    """Copies whose attribute dicts the processors may change (not timed)."""
    return [Span(s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind,
                 s.start_time_unix_nano, s.end_time_unix_nano, dict(s.attributes), s.resource)
            for s in spans]


def bench(name: str, create, spans: list[Span], prepare=()) -> None:
    """Best of three runs of a fresh processor over copies of ``spans``."""
    best = float("inf")
    for _ in range(3):
        copies = fresh(spans)
        batches = [copies[i:i + BATCH] for i in range(0, len(copies), BATCH)]
        for make_earlier in prepare:  # untimed: the processors that run before this one
            earlier = make_earlier()
            for batch in batches:
                earlier.process(batch)
        processor = create()
        t0 = time.perf_counter()
        for batch in batches:
            processor.process(batch)
        best = min(best, time.perf_counter() - t0)
    print(f"{name:<12} {len(spans) / best:>10,.0f} spans/s  ({best * 1e6 / len(spans):.2f} µs/span)")


class Chain:
    """normalize → autosession → cost, as the pipeline runs them."""

    def __init__(self) -> None:
        self.processors = [
            normalize.NormalizeProcessor(normalize.Config()),
            autosession.AutoSessionProcessor(autosession.Config()),
            cost.CostProcessor(cost.Config()),
        ]

    def process(self, batch: list[Span]) -> list[Span]:
        for processor in self.processors:
            batch = processor.process(batch)
        return batch


class _Sink:
    def consume(self, batch: Batch) -> None:
        pass


class Consumers:
    """The same three as the pipeline wires them: each made by its factory with its next
    consumer (``collector/processorhelper.py``: a lock and the failure isolation per step).
    Against ``Chain``, the cost of the consumer shape itself."""

    def __init__(self) -> None:
        consumer = _Sink()
        for module in (cost, autosession, normalize):
            consumer = module.create(module.Config(), Settings(module.TYPE, None), consumer)
        self.head = consumer

    def process(self, batch: list[Span]) -> None:
        self.head.consume(Batch(batch))


def main() -> None:
    base = make_spans(SPANS)
    sizes = {len(s.attributes) for s in base}
    print(f"{SPANS:,} LLM spans, {min(sizes)}-{max(sizes)} attributes (+7 resource), "
          f"batches of {BATCH}, one thread, best of 3")
    norm = lambda: normalize.NormalizeProcessor(normalize.Config())  # noqa: E731
    auto = lambda: autosession.AutoSessionProcessor(autosession.Config())  # noqa: E731
    bench("normalize", norm, base)
    bench("autosession", auto, base, prepare=(norm,))
    bench("cost", lambda: cost.CostProcessor(cost.Config()), base, prepare=(norm,))
    bench("all three", Chain, base)
    bench("as consumers", Consumers, base)


if __name__ == "__main__":
    main()
