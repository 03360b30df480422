"""Added latency of the sessionlens instrumentation: instrumented vs. bare openai SDK.

Method: the fake LLM server of the tests runs in its own process (so its threads do not
compete with the measured calls for the GIL). In this process two ``openai.OpenAI``
clients talk to it, identical but for ``SessionLensInstrumentor.instrument_client`` on
one of them; calls alternate A/B in pairs, in random order within each pair, so drift
(CPU frequency, server warm-up, GC) hits both sides alike. Spans go through a
BatchSpanProcessor to a no-op exporter — in production export is off the call path too.
The instrumentation finishes spans (parsing, attributes) on a background thread; the
bench drains it between measured calls and reports that work separately.
Every call runs inside ``sessionlens.session()``/``run()`` with an adopted header, so the
context and header paths are measured.

Printed, for non-streaming calls (whole call) and streaming calls (time to first chunk):
median and p99 of each side and the added time (instrumented − bare), by wall clock and
by the calling thread's CPU time. The instrumentation adds CPU work only (no I/O), so on
a busy machine — the load average is printed — the thread-CPU figures are the reliable
estimate of what an idle machine's wall clock would show. A second round gives both
arms opentelemetry-instrumentation-httpx (as ``opentelemetry-instrument`` does): the
LLM span then starts on the call path, to be the parent of the HTTP span.

    .venv/bin/python bench/instrumentation_overhead.py [--pairs 3000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import openai
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import sessionlens
from sessionlens.instrumentation import SessionLensInstrumentor
from sessionlens.instrumentation.finisher import FINISHER

TESTS = Path(__file__).resolve().parent.parent / "tests"
MESSAGES = [{"role": "user", "content": "hi"}]
HEADERS = {"X-Request-ID": "bench-request"}

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from instr_fake_llm import FakeLLMServer
with FakeLLMServer() as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


class _NoopExporter(SpanExporter):
    def export(self, spans: Sequence[object]) -> SpanExportResult:  # type: ignore[override]
        return SpanExportResult.SUCCESS


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


Sample = tuple[float, float]
"""(wall-clock seconds, seconds of this thread's CPU) of one measurement."""


def _clocks() -> Sample:
    return time.perf_counter(), time.thread_time()


def _since(start: Sample) -> Sample:
    return time.perf_counter() - start[0], time.thread_time() - start[1]


def _call(client: openai.OpenAI) -> Sample:
    start = _clocks()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS)  # type: ignore[arg-type]
    return _since(start)


def _first_chunk(client: openai.OpenAI) -> Sample:
    start = _clocks()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=HEADERS,
    )
    iterator = iter(stream)
    next(iterator)
    elapsed = _since(start)
    for _ in iterator:  # read to the end, as an app would, outside the measurement
        pass
    return elapsed


def _ab(
    measure: Callable[[openai.OpenAI], Sample], bare: openai.OpenAI, traced: openai.OpenAI, pairs: int
) -> tuple[list[Sample], list[Sample], list[float]]:
    a: list[Sample] = []
    b: list[Sample] = []
    drains: list[float] = []

    def traced_call() -> None:
        b.append(measure(traced))
        # Finish the span before the next measured call, so its (off-path) work never
        # lands inside either arm's timing; how long it takes is reported on its own.
        start = time.perf_counter()
        FINISHER.flush()
        drains.append(time.perf_counter() - start)

    for _ in range(pairs // 10):  # warm-up: connections, caches, lazy imports
        measure(bare), measure(traced)
    with sessionlens.session(id="bench-session", path="bench"), sessionlens.run(agent_id="bench-agent"):
        for _ in range(pairs):
            if random.random() < 0.5:
                a.append(measure(bare))
                traced_call()
            else:
                traced_call()
                a.append(measure(bare))
    return a, b, drains


def _report(title: str, bare: list[Sample], traced: list[Sample], drains: list[float], target_us: float) -> None:
    us = 1e6
    print(f"{title} ({len(bare)} A/B pairs)")
    for clock, label in ((0, "wall clock"), (1, "thread CPU")):
        a = [sample[clock] * us for sample in bare]
        b = [sample[clock] * us for sample in traced]
        am, bm, a99, b99 = statistics.median(a), statistics.median(b), _quantile(a, 0.99), _quantile(b, 0.99)
        paired = statistics.median(y - x for x, y in zip(a, b))
        verdict = "OK" if bm - am <= target_us else "MISSED"
        print(f"  {label}: bare median {am:8.1f} µs p99 {a99:8.1f} µs | instrumented median {bm:8.1f} µs p99 {b99:8.1f} µs")
        print(
            f"  {label}: ADDED median {bm - am:6.1f} µs, p99 {b99 - a99:7.1f} µs, "
            f"median per-pair {paired:6.1f} µs  (target ≤ {target_us:.0f} µs: {verdict})"
        )
    print(f"  span finishing, off the call path: median {statistics.median(drains) * us:.1f} µs per call")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=3000, help="A/B pairs per measurement")
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(TESTS))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_NoopExporter()))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"python {sys.version.split()[0]}, openai {openai.__version__}, fake server {url}, load average {load}")
        for http_spans in (False, True):
            bare, traced = (openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) for _ in range(2))
            note = ""
            if http_spans:
                # Both arms get HTTP spans (as under opentelemetry-instrument): the LLM span
                # must then start on the call path, to be their parent.
                for client in (bare, traced):
                    HTTPX2ClientInstrumentor.instrument_client(client._client, tracer_provider=provider)
                note = ", both arms with opentelemetry-instrumentation-httpx"
            SessionLensInstrumentor.instrument_client(traced, tracer_provider=provider)
            _report(f"non-streaming call latency{note}", *_ab(_call, bare, traced, args.pairs), target_us=50)
            _report(f"streaming time to first chunk{note}", *_ab(_first_chunk, bare, traced, args.pairs), target_us=100)
        provider.shutdown()
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
