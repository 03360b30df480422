"""One running traces pipeline: receivers → [batch] → decode → processors in order → exporter.

A :class:`~sessionlens.collector.pdata.Batch` goes from step to step. Receivers hand on
requests as the bytes they received; the decode stage (``collector/engine.py``), right
after any processor that only gathers (``batch``), turns them into the engine path's
columns or the span path's spans. Every processor takes both forms (``process`` for spans,
``process_columns`` for columns); with a processor that has no ``process_columns``, or an
exporter that cannot store columns, every request takes the span path.

A receiver calls :meth:`Pipeline.consume` and acknowledges its request only when that
returns: by then the exporter's ``export`` has returned, so the spans are in ClickHouse or
the exporter's fsynced spool. ``ExportUnavailable`` from anywhere downstream reaches the
receiver, which answers UNAVAILABLE with RetryInfo.

Processors are called one batch at a time each (a lock per processor: their state need
not be thread-safe). A processor with a ``wrap(downstream)`` method (``batch``) is not
called per batch but put in front of the rest of the chain, which it feeds itself.

One bad span never costs another: when a processor or the exporter raises for a batch
(anything but ``ExportUnavailable``, which is about storage, not about the spans), the
pipeline runs that step again one span at a time, marks the spans it still fails on as
rejected (``Span.rejected``, reported by the receiver through ``partial_success``) and
passes the others on. This is the one place that isolates span failures; the steps
themselves just raise. (A retried processor may meet spans it already changed before it
failed: processors keep every span valid after each change.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sessionlens.collector import engine
from sessionlens.collector.component import ExportUnavailable
from sessionlens.collector.config import CollectorConfig, ComponentSpec
from sessionlens.collector.pdata import Batch, Span

log = logging.getLogger("sessionlens.collector")

Consumer = Callable[[Batch], None]

# sorted() is stable: processors keep their configured order.
_SHUTDOWN_ORDER = {"receivers": 0, "processors": 1, "exporters": 2, "extensions": 3}


class PipelineHost:
    """What components may ask of the running collector (``component.Host``)."""

    def __init__(self, inactivity_timeout: float | None = None) -> None:
        self.exporter: Any = None
        self.extensions: dict[str, Any] = {}
        self.export_listeners: list[Consumer] = []
        self.inactivity_timeout = inactivity_timeout
        """Seconds: the autosession processor's ``inactivity_timeout`` (None without one)."""
        self.engine_path = False
        """Whether requests go downstream as bytes (the engine path's decode stage is on);
        else receivers decode them, on their own threads."""

    def on_exported(self, listener: Consumer) -> None:
        """Call ``listener(batch)`` after each batch the exporter made durable (its spans
        and columns are the durable ones).

        For extensions (the sessions API's live stream), registered in their ``start``. It
        runs on the acknowledging thread: it must be quick and must not raise.
        """
        self.export_listeners.append(listener)

    def storage_client(self):
        """A new client on the exporter's storage, or None if the exporter has none."""
        new_client = getattr(self.exporter, "new_client", None)
        return new_client() if new_client is not None else None

    @property
    def database(self) -> str | None:
        return getattr(self.exporter, "database", None)

    def spooled(self, columns: tuple[str, ...]):
        """Columns of the spans the exporter holds but has not stored yet (none without a spool)."""
        spooled = getattr(self.exporter, "spooled", None)
        return spooled(columns) if spooled is not None else iter(())

    def extension(self, component_id: str) -> Any:
        """A started extension by its id (e.g. ``bearertokenauth``), or None."""
        return self.extensions.get(component_id)


_REPORT_EVERY_S = 10.0
_last_report = [0.0]  # when a span failure was last logged (a flood of bad spans is one line per interval)


def isolated(step: Callable[[list[Span]], list[Span] | None], what: str, spans: list[Span]) -> list[Span]:
    """``step(spans)``, except that a span it fails on is rejected alone.

    Returns the spans to pass on: what ``step`` returned (None: ``spans``), without the
    spans it failed on when run on one span at a time. ``ExportUnavailable`` propagates.
    """
    try:
        result = step(spans)
        return spans if result is None else result
    except ExportUnavailable:
        raise
    except Exception as exc:
        failure = exc
    kept: list[Span] = []
    rejected = 0
    for span in spans:
        try:
            result = step([span])
        except ExportUnavailable:
            raise
        except Exception as exc:
            span.rejected = f"{what} failed on it ({type(exc).__name__}: {str(exc)[:200]})"
            rejected += 1
            continue
        kept.extend([span] if result is None else result)
    now = time.monotonic()
    if now - _last_report[0] >= _REPORT_EVERY_S:
        _last_report[0] = now
        log.warning(
            "%s failed on a batch of %d span(s); %d rejected, the rest passed on",
            what, len(spans), rejected, exc_info=failure,
        )
    return kept


def _step(batch: Batch, what: str, on_columns: Callable | None, on_spans: Callable) -> None:
    """Run a step on both forms of ``batch``: its columns (when it has any; a failure hands
    them to the span path) and then its spans, isolated span by span."""
    if batch.columns is not None:
        try:
            on_columns(batch.columns)
        except ExportUnavailable:
            raise
        except Exception:  # the span path isolates the span it fails on
            log.warning("%s failed on columns; their spans take the span path", what, exc_info=True)
            batch.spans.extend(batch.columns.to_spans())
            batch.columns = None
    if batch.spans:
        batch.spans = isolated(on_spans, what, batch.spans)


def _serialized(spec: ComponentSpec, processor: Any, downstream: Consumer) -> Consumer:
    lock = threading.Lock()
    process = processor.process
    process_columns = getattr(processor, "process_columns", None)
    what = f"processor {spec.id}"

    def consume(batch: Batch) -> None:
        with lock:
            _step(batch, what, process_columns, process)
        if batch.spans or batch.columns is not None:
            downstream(batch)

    return consume


def _exporting(spec: ComponentSpec, exporter: Any, listeners: list[Consumer]) -> Consumer:
    export = exporter.export
    what = f"exporter {spec.id}"

    def consume(batch: Batch) -> None:
        _step(batch, what, getattr(exporter, "export_columns", None), export)
        for listener in listeners:  # told of the durable spans only
            try:
                listener(batch)
            except Exception:  # the spans are durable: a listener's bug must not fail the ack
                log.exception("an export listener failed")

    return consume


def _decoding(decoder: engine.Decoder | None, downstream: Consumer) -> Consumer:
    """The decode stage: requests become columns (engine path) or spans."""
    lock = threading.Lock()  # one engine client; with ``batch`` in front, one caller anyway

    def consume(batch: Batch) -> None:
        if batch.requests:
            if decoder is None:
                requests, batch.requests = batch.requests, []
                for request in requests:
                    batch.spans.extend(engine.decode_in_python(request))
            else:
                with lock:
                    decoder.decode(batch)
        if batch.spans or batch.columns is not None:
            downstream(batch)

    return consume


class Pipeline:
    """Creates, starts and stops the configured components and links them."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        # The exporter stores the sessions' inactivity timeout where the views read their
        # status from, so the processor's setting is the one source of truth.
        timeouts = [
            spec.config.inactivity_timeout
            for spec in config.processors
            if getattr(spec.module, "TYPE", None) == "autosession"
        ]
        self.host = PipelineHost(timeouts[0] if timeouts else None)
        self._started: list[tuple[ComponentSpec, Any]] = []
        self._decoder: engine.Decoder | None = None
        self.consume: Consumer = self._not_started
        self.receivers: list[Any] = []

    @staticmethod
    def _not_started(batch: Batch) -> None:
        raise RuntimeError("pipeline not started")

    def _create(self, spec: ComponentSpec) -> Any:
        return spec.module.create(spec.config, self.host)

    def _start(self, spec: ComponentSpec, component: Any, *args: Any) -> None:
        start = getattr(component, "start", None)
        if start is not None:
            start(self.host, *args)
        self._started.append((spec, component))

    def start(self) -> None:
        """Start extensions, the exporter, processors, then receivers (which go live last).

        On failure everything started so far is shut down again and the error propagates.
        """
        try:
            for spec in self.config.extensions:
                extension = self._create(spec)
                self._start(spec, extension)
                self.host.extensions[spec.id] = extension
            exporter_spec = self.config.exporter
            exporter = self._create(exporter_spec)
            self.host.exporter = exporter
            self._start(exporter_spec, exporter)
            processors = [(spec, self._create(spec)) for spec in self.config.processors]
            for spec, processor in processors:
                self._start(spec, processor)
            # The decode stage goes right after the leading processors that only gather
            # (batch); a gathering one further on merges decoded batches, which it can only
            # do for spans: the engine path is then off.
            gathering = 0
            while gathering < len(processors) and hasattr(processors[gathering][1], "wrap"):
                gathering += 1
            later = any(hasattr(p, "wrap") for _, p in processors[gathering:])
            plain = [p for _, p in processors if not hasattr(p, "wrap")]
            self._decoder = None if later else self._engine_decoder(exporter, plain)
            self.host.engine_path = self._decoder is not None
            consume: Consumer = _exporting(exporter_spec, exporter, self.host.export_listeners)
            for k in reversed(range(len(processors) + 1)):
                if k == gathering:
                    consume = _decoding(self._decoder, consume)
                if k == 0:
                    break
                spec, processor = processors[k - 1]
                wrap = getattr(processor, "wrap", None)
                consume = wrap(consume) if wrap is not None else _serialized(spec, processor, consume)
            self.consume = consume
            for spec in self.config.receivers:
                receiver = self._create(spec)
                self._start(spec, receiver, self.consume)
                self.receivers.append(receiver)
        except BaseException:
            self.shutdown()
            raise

    @staticmethod
    def _engine_decoder(exporter: Any, processors: list[Any]) -> engine.Decoder | None:
        """The engine path's decode stage, when the exporter and every processor take columns."""
        connect = getattr(exporter, "engine_client", None)
        if connect is None or not hasattr(exporter, "export_columns"):
            return None
        if any(not hasattr(p, "process_columns") for p in processors):
            return None
        parameters: dict[str, Any] = {}
        for processor in processors:
            extract_parameters = getattr(processor, "extract_parameters", None)
            if extract_parameters is not None:
                parameters.update(extract_parameters())
        return engine.Decoder(connect, parameters)

    def endpoints(self) -> list[str]:
        """Where the receivers listen, e.g. ``OTLP/gRPC 127.0.0.1:4317``."""
        return [e for r in self.receivers for e in getattr(r, "endpoints", lambda: [])()]

    def shutdown(self) -> None:
        """Stop in data-flow order: receivers stop taking requests, each processor (``batch``
        first) flushes into a still-running downstream, the exporter stops last, then the
        extensions. Errors are logged, not raised, so every component stops."""
        started = sorted(self._started, key=lambda item: _SHUTDOWN_ORDER[item[0].kind])
        self._started = []
        for spec, component in started:
            shutdown = getattr(component, "shutdown", None)
            if shutdown is None:
                continue
            try:
                shutdown()
            except Exception:
                log.exception("shutting down %s %s failed", spec.kind, spec.id)
        self.consume = self._not_started
        self.receivers.clear()
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
