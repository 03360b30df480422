"""What the sessionlens instrumentation costs per LLM call, by timers and by instruction counts.

The fake LLM server of the tests runs in its own process, so its threads never compete with
the measured calls for the GIL. Spans go through a BatchSpanProcessor to an exporter that
encodes them to OTLP protobuf, as the OTLP exporters do, and drops the bytes: export is
counted, the network is not. Every call runs inside ``sessionlens.session()``/``run()``
with an adopted header, so the context and header paths are measured.

Part 1, timers (this process; openai's ``chat.completions.create``, non-streaming whole call
and streaming time to first chunk), each round once without and once with
opentelemetry-instrumentation-httpx in both arms, as ``opentelemetry-instrument`` has it (its
``httpx`` and ``httpx2`` instrumentors; openai 3.x sends through ``httpx2``) — the LLM span
then starts on the call path, to be the parent of the HTTP span:

- *drained A/B*: two clients, identical but for ``SessionLensInstrumentor.instrument_client``
  on one; calls alternate in random order within each pair, and the finisher thread is
  drained between calls, its work reported apart ("span finishing, off the call path").
- *back to back*: blocks of calls alternate between the arms with nothing drained, so the
  finisher's work lands where it lands (on the GIL, beside the next calls); per call: wall
  clock and calling-thread CPU, and the **process CPU of all threads** (the block's
  ``time.process_time()`` including finishing and export at its end) divided by its calls.

This 2-core machine is shared with other work while the bench runs (the load average is
printed): timers scatter by tens of µs, so rank with part 2.

Part 2, instructions under ``valgrind --tool=callgrind`` (all threads, repeatable whatever else
the machine does): one process per arm — bare, sessionlens, the official OpenTelemetry GenAI
instrumentation (opentelemetry-instrumentation-genai-openai) and OpenLLMetry
(opentelemetry-instrumentation-openai, content capture off like the others) — each without
and with the httpx instrumentors, all installed in one venv the bench makes under
``~/.cache/sessionlens-bench/`` (the peers are NOT project dependencies; the venv pins
openai, httpx, httpx2 and the OpenTelemetry SDK to the versions of the running environment
and installs this checkout editable). In each process, after a warm-up, segments of N1 and
N2 calls are counted apart (``callgrind_control --dump`` at each boundary); per call =
(N2-call segment − N1-call segment) / (N2 − N1), which cancels the fixed cost of a segment.
Each segment ends with its spans finished and exported, counted in it. "Call path" is the
calling thread's instructions during the calls alone. Time-driven work (the finisher's
50 ms poll, the batch processor's 5 s timer) is held off under callgrind: it is paid per
second, not per call, and a process ~50× slower than native would otherwise pay it ~50×
too often per call. Instructions are turned into µs at the rate of the bare call
(its instructions / its process CPU per call measured natively in part 1).

The target is checked twice: on everything the process does more per call, and on that
less the OTLP encoding of the spans. Encoding is the application's exporter's work (the
SDK's BatchSpanProcessor thread running opentelemetry-exporter-otlp's encoder), paid per
span and per attribute (~110k instructions a span, ~21k an attribute with
opentelemetry-exporter-otlp-proto-common 1.45 and upb protobuf); an instrumentation only
decides how many spans and attributes there are. The product target counts "the work the
instrumentation does on its own threads"; the issue's "all threads" counts the exporter too.

    .venv/bin/python bench/instrumentation_overhead.py [--pairs 1000] [--calls 10,60]
        [--skip-timers] [--skip-callgrind] [--arms bare,sessionlens,…] [--http both|on|off]

Part 2 takes 20–60 minutes on the shared 2-core machine (Python under callgrind is ~50×
slower, and each process first imports openai and the SDK): ``--arms`` and ``--http``
run a part of it, smaller ``--calls`` a shorter one.

Peers' versions: opentelemetry-instrumentation-genai-openai==1.3b0,
opentelemetry-instrumentation-openai==0.62.4 (change ``PEERS`` to measure others).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
MESSAGES = [{"role": "user", "content": "hi"}]
HEADERS = {"X-Request-ID": "bench-request"}
PEERS = ("opentelemetry-instrumentation-genai-openai==1.3b0", "opentelemetry-instrumentation-openai==0.62.4")
PINNED = ("openai", "httpx", "httpx2", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation-httpx")
ARMS = ("bare", "sessionlens", "genai-openai", "openllmetry")
HOLD_SECONDS = 3600.0
"""Under callgrind, time-driven work waits this long: it then runs only when a segment flushes."""
INSTRUCTIONS_PER_60_US = 230_000
"""The issue's conversion on this machine: 60 µs of CPU ≈ 230k instructions."""

SERVER = """
import sys
sys.path.insert(0, {tests!r})
from instr_fake_llm import FakeLLMServer
with FakeLLMServer() as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


# --- set-up shared by both parts --------------------------------------------------------


def _encoding_exporter(hold: bool = False) -> Any:
    """An exporter that does what the OTLP exporters do before the network: encode to protobuf.

    With ``hold``, spans are kept until ``encode_held()``, so callgrind counts encoding apart.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class EncodingExporter(SpanExporter):
        def __init__(self) -> None:
            self.held: list[Any] = []

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            if hold:
                self.held.extend(spans)
            else:
                encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

        def encode_held(self) -> None:
            if self.held:  # one batch, as the BatchSpanProcessor would send them
                encode_spans(self.held).SerializeToString()
            self.held.clear()

    return EncodingExporter()


def _provider(schedule_delay_millis: float | None = None, exporter: Any = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    kwargs = {} if schedule_delay_millis is None else {"schedule_delay_millis": schedule_delay_millis}
    provider.add_span_processor(BatchSpanProcessor(exporter or _encoding_exporter(), **kwargs))
    return provider


def _http_instrumentors() -> list[Any]:
    """opentelemetry-instrumentation-httpx's two instrumentors, as the launcher loads them."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

    return [HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()]


@contextmanager
def _fake_server() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(TESTS))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield server.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)


def _call(client: Any) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=HEADERS)


def _stream(client: Any) -> Iterator[Any]:
    return iter(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_headers=HEADERS
        )
    )


def _streamed(client: Any) -> None:
    for _ in _stream(client):
        pass


def _scope() -> Any:
    import sessionlens

    @contextmanager
    def scope() -> Iterator[None]:
        with sessionlens.session(id="bench-session", path="bench"), sessionlens.run(agent_id="bench-agent"):
            yield

    return scope()


# --- part 1: timers ---------------------------------------------------------------------

Sample = tuple[float, float]
"""(wall-clock seconds, seconds of this thread's CPU) of one measurement."""


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _timed(measure: Callable[[Any], None], client: Any) -> Sample:
    wall, cpu = time.perf_counter(), time.thread_time()
    measure(client)
    return time.perf_counter() - wall, time.thread_time() - cpu


def _first_chunk(client: Any) -> Sample:
    wall, cpu = time.perf_counter(), time.thread_time()
    iterator = _stream(client)
    next(iterator)
    sample = time.perf_counter() - wall, time.thread_time() - cpu
    for _ in iterator:  # read to the end, as an app would, outside the measurement
        pass
    return sample


def _drained_ab(measure: Callable[[Any], Sample], bare: Any, traced: Any, pairs: int) -> tuple[list[Sample], list[Sample], list[float]]:
    from sessionlens.instrumentation.finisher import FINISHER

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
    for _ in range(pairs):
        if random.random() < 0.5:
            a.append(measure(bare))
            traced_call()
        else:
            traced_call()
            a.append(measure(bare))
    return a, b, drains


def _back_to_back(
    measure: Callable[[Any], Sample], bare: Any, traced: Any, provider: Any, blocks: int, size: int
) -> tuple[list[Sample], list[Sample], list[float], list[float]]:
    """Alternating blocks of ``size`` calls, nothing drained between calls.

    Returns each arm's per-call samples and each block's process CPU per call, the block's
    finishing and export (run at its end) included.
    """
    from sessionlens.instrumentation.finisher import FINISHER

    samples: dict[bool, list[Sample]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for block in range(blocks):
        for is_traced in (block % 2 == 0, block % 2 == 1):
            client = traced if is_traced else bare
            start = time.process_time()
            for _ in range(size):
                samples[is_traced].append(measure(client))
            FINISHER.flush()
            provider.force_flush()
            cpu[is_traced].append((time.process_time() - start) / size)
    return samples[False], samples[True], cpu[False], cpu[True]


def _print_samples(label: str, bare: list[Sample], traced: list[Sample], target_us: float | None) -> None:
    us = 1e6
    for clock, name in ((0, "wall clock"), (1, "thread CPU")):
        a = [sample[clock] * us for sample in bare]
        b = [sample[clock] * us for sample in traced]
        am, bm = statistics.median(a), statistics.median(b)
        verdict = "" if target_us is None else f"  (target ≤ {target_us:.0f} µs: {'OK' if bm - am <= target_us else 'MISSED'})"
        print(
            f"  {label} {name}: bare median {am:8.1f} µs p99 {_quantile(a, 0.99):8.1f} | instrumented median "
            f"{bm:8.1f} µs p99 {_quantile(b, 0.99):8.1f} | ADDED median {bm - am:6.1f} µs{verdict}"
        )


def timers(url: str, pairs: int) -> float:
    """Part 1; returns the bare non-streaming call's process CPU per call (µs), with HTTP spans on."""
    import openai

    from sessionlens.instrumentation import SessionLensInstrumentor

    provider = _provider()
    bare_cpu_us = 0.0
    instrumentors = _http_instrumentors()
    for http_spans in (False, True):
        if http_spans:
            for instrumentor in instrumentors:
                instrumentor.instrument(tracer_provider=provider)
        bare, traced = (openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) for _ in range(2))
        SessionLensInstrumentor.instrument_client(traced, tracer_provider=provider)
        note = " — httpx instrumentation ON in both arms" if http_spans else " — httpx instrumentation off"
        with _scope():
            for title, measure, target in (
                ("non-streaming call", lambda cl: _timed(_call, cl), 50.0),
                ("streaming time to first chunk", _first_chunk, 100.0),
            ):
                a, b, drains = _drained_ab(measure, bare, traced, pairs)
                print(f"{title}{note}")
                _print_samples(f"drained A/B ({pairs} pairs)", a, b, target)
                print(f"  span finishing, off the call path: median {statistics.median(drains) * 1e6:.1f} µs per call")
            for title, measure, target in (
                ("non-streaming call", lambda cl: _timed(_call, cl), 50.0),
                ("streaming, read to the end", lambda cl: _timed(_streamed, cl), None),
            ):
                blocks, size = max(pairs // 20, 4), 20
                a, b, cpu_a, cpu_b = _back_to_back(measure, bare, traced, provider, blocks, size)
                print(f"{title}, back to back, not drained ({blocks} blocks of {size} calls per arm){note}")
                _print_samples("per call", a, b, target)
                am, bm = statistics.median(cpu_a) * 1e6, statistics.median(cpu_b) * 1e6
                total_target = 60.0 if target is not None else 100.0
                verdict = "OK" if bm - am <= total_target else "MISSED"
                print(
                    f"  process CPU per call, all threads (finishing + export included): bare median {am:7.1f} µs | "
                    f"instrumented median {bm:7.1f} µs | ADDED {bm - am:6.1f} µs  (target ≤ {total_target:.0f} µs: {verdict})"
                )
                if http_spans and target is not None:
                    bare_cpu_us = am
        SessionLensInstrumentor.uninstrument_client(traced)
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    provider.shutdown()
    return bare_cpu_us


# --- part 2: callgrind ------------------------------------------------------------------


def _peer_venv() -> Path:
    """The bench's own venv (this checkout editable, the peers, versions pinned to ours); made once."""
    requirements = [f"{name}=={version(name)}" for name in PINNED] + list(PEERS)
    key = hashlib.sha256(json.dumps([str(REPO), sys.version, requirements]).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sessionlens-bench"
    venv = cache / f"peers-{key}"
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python
    print(f"creating the bench venv {venv} (once): {' '.join(requirements)}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", str(REPO), *requirements], capture_output=True, text=True
    )
    if pip.returncode != 0:
        raise RuntimeError(f"could not install the bench venv:\n{pip.stderr[-3000:]}")
    (venv / ".ready").touch()
    return python


def _child(arm: str, http_spans: bool, url: str, counts: tuple[int, int]) -> None:
    """One process under callgrind: warm up, then count segments of calls (see the module doc)."""
    pid = str(os.getpid())

    def dump(tag: str) -> None:
        subprocess.run(["callgrind_control", f"--dump={tag}", pid], check=True, capture_output=True)

    import openai

    exporter = _encoding_exporter(hold=True)
    provider = _provider(schedule_delay_millis=HOLD_SECONDS * 1000, exporter=exporter)
    if http_spans:
        for instrumentor in _http_instrumentors():
            instrumentor.instrument(tracer_provider=provider)
    finish: Callable[[], None] = lambda: None  # noqa: E731
    if arm == "sessionlens":
        from sessionlens.instrumentation import SessionLensInstrumentor, finisher

        finisher.POLL_SECONDS = HOLD_SECONDS
        SessionLensInstrumentor().instrument(tracer_provider=provider)
        finish = finisher.FINISHER.flush
    elif arm == "genai-openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif arm == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "false"  # content capture off, as in the other arms
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry

        OpenLLMetry().instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    with _scope():
        for measure in (_call, _streamed):
            for _ in range(5):
                measure(client)
        finish()
        provider.force_flush()
        exporter.encode_held()
        # Everything alive now (imports, clients) stays out of the collector's way, so a
        # full collection landing in one segment and not the other cannot tip the difference.
        gc.collect()
        gc.freeze()
        dump("warm-up")
        for kind, measure in (("call", _call), ("stream", _streamed)):
            for count in counts:
                for _ in range(count):
                    measure(client)
                dump(f"{kind} {count} calls")
                finish()
                provider.force_flush()
                dump(f"{kind} {count} flush")
                exporter.encode_held()
                dump(f"{kind} {count} encode")
    provider.shutdown()


def _read_dumps(base: str) -> dict[str, dict[int, int]]:
    """Dump trigger -> thread -> instructions, from callgrind's per-thread dump files."""
    found: dict[str, dict[int, int]] = {}
    for path in Path(base).parent.glob(Path(base).name + "*"):
        text = path.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: (?:Client Request: |dump )?(.*)$", text, re.M)
        thread = re.search(r"^thread: (\d+)$", text, re.M)
        totals = re.search(r"^(?:totals|summary): (\d+)$", text, re.M)
        if trigger and thread and totals:
            found.setdefault(trigger.group(1).strip(), {})[int(thread.group(1))] = int(totals.group(1))
    return found


def _run_child(python: Path, arm: str, http_spans: bool, url: str, counts: tuple[int, int]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sessionlens-cg-") as tmp:
        base = f"{tmp}/cg"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        command = [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={base}",
            str(python), __file__, "--child", arm, "--child-http", str(int(http_spans)),
            "--child-url", url, "--calls", ",".join(map(str, counts)),
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind run of {arm} failed:\n{done.stderr[-3000:]}")
        dumps = _read_dumps(base)
    n1, n2 = counts
    result: dict[str, float] = {}
    for kind in ("call", "stream"):
        def per_call(segment: str, kind: str = kind) -> float:
            return (sum(dumps[f"{kind} {n2} {segment}"].values()) - sum(dumps[f"{kind} {n1} {segment}"].values())) / (n2 - n1)

        result[f"{kind} encode"] = per_call("encode")
        result[f"{kind} total"] = per_call("calls") + per_call("flush") + result[f"{kind} encode"]
        result[f"{kind} path"] = (dumps[f"{kind} {n2} calls"].get(1, 0) - dumps[f"{kind} {n1} calls"].get(1, 0)) / (n2 - n1)
    return result


def _fmt(instructions: float) -> str:
    return f"{instructions / 1e6:+.2f}M" if abs(instructions) >= 1e6 else f"{instructions / 1e3:+.0f}k"


def instructions(url: str, counts: tuple[int, int], bare_cpu_us: float, arms: Sequence[str], https: Sequence[bool]) -> None:
    """Part 2: the arms under callgrind, two at a time (instruction counts do not care)."""
    if shutil.which("valgrind") is None:
        print("callgrind: valgrind is not installed (apt-get install valgrind); part 2 skipped")
        return
    python = _peer_venv()
    arms = ["bare", *(arm for arm in arms if arm != "bare")]
    runs = [(arm, http) for http in https for arm in arms]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {run: pool.submit(_run_child, python, *run, url, counts) for run in runs}
        results = {run: future.result() for run, future in futures.items()}
    n1, n2 = counts
    print(
        f"\ncallgrind: instructions per call, all threads of the process (finishing + OTLP encoding included); "
        f"per call = ({n2}-call segment − {n1}-call segment) / {n2 - n1}; PYTHONHASHSEED=0"
    )
    bare_total = results[("bare", https[-1])]["call total"]
    if bare_cpu_us and https[-1]:
        rate = bare_total / bare_cpu_us
        source = f"the bare call with HTTP spans: {bare_total / 1e6:.2f}M instructions, {bare_cpu_us:.0f} µs process CPU natively in part 1"
    else:
        rate = INSTRUCTIONS_PER_60_US / 60
        source = "the issue's 230k instructions per 60 µs; part 1 did not run"
    print(f"  µs below ≈ instructions / {rate / 1e3:.2f}k per µs ({source})")
    targets = {"call": INSTRUCTIONS_PER_60_US, "stream": INSTRUCTIONS_PER_60_US * 100 / 60}
    for http in https:
        print(f"  httpx instrumentation {'ON (as opentelemetry-instrument has it)' if http else 'off'}:")
        base = results[("bare", http)]
        for kind, title in (("call", "non-streaming"), ("stream", "streaming, read to the end")):
            print(f"    {title}:")
            for arm in arms:
                got = results[(arm, http)]
                total, path, encode = got[f"{kind} total"], got[f"{kind} path"], got[f"{kind} encode"]
                if arm == "bare":
                    print(
                        f"      {arm:<13} {total / 1e6:6.2f}M per call (call path {path / 1e6:.2f}M, "
                        f"OTLP encoding {max(encode, 0) / 1e3:.0f}k)"
                    )
                    continue
                added = total - base[f"{kind} total"]
                added_path, added_encode = path - base[f"{kind} path"], encode - base[f"{kind} encode"]
                verdict = ""
                if arm == "sessionlens":
                    own = added - added_encode  # what the instrumentation's code runs, on any thread
                    verdict = (
                        f"  [target ≤ {targets[kind] / 1e3:.0f}k: {'OK' if added <= targets[kind] else 'MISSED'}; "
                        f"without the exporter's encoding {_fmt(own)}: {'OK' if own <= targets[kind] else 'MISSED'}]"
                    )
                print(
                    f"      {arm:<13} {_fmt(added):>7} added ({added / base[f'{kind} total'] * 100:+5.1f} %, ≈{added / rate:4.0f} µs)"
                    f" — call path {_fmt(added_path)}, OTLP encoding {_fmt(added_encode)}, "
                    f"the rest (finishing, span processors) {_fmt(added - added_path - added_encode)}{verdict}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=1000, help="A/B pairs per timer measurement")
    parser.add_argument("--calls", default="10,60", help="N1,N2: calls in the two counted segments")
    parser.add_argument("--skip-timers", action="store_true")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"callgrind arms among {','.join(ARMS)} (bare always runs)")
    parser.add_argument("--http", choices=("both", "on", "off"), default="both", help="callgrind: httpx instrumentation")
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--child-http", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n1, n2 = (int(n) for n in args.calls.split(","))
    if args.child:
        _child(args.child, bool(args.child_http), args.child_url, (n1, n2))
        return 0

    import openai

    with _fake_server() as url:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"python {sys.version.split()[0]}, openai {openai.__version__}, httpx2 {version('httpx2')}, "
            f"opentelemetry-sdk {version('opentelemetry-sdk')}, fake server {url}, load average {load} "
            f"(2 cores, shared with other work)"
        )
        bare_cpu_us = 0.0 if args.skip_timers else timers(url, args.pairs)
        if not args.skip_callgrind:
            https = {"both": (False, True), "on": (True,), "off": (False,)}[args.http]
            instructions(url, (n1, n2), bare_cpu_us, args.arms.split(","), https)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
