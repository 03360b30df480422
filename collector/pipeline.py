"""One running traces pipeline: receivers → [batch] → decode → processors in order → exporter.

Every step is a consumer (``component.Consumer``: one ``consume(batch)``) created with the
next one: the pipeline builds the chain from the exporter backwards, in config order, and
hands each factory its next consumer (``create(config, settings, next_consumer)``), so no
component finds another by itself. What a processor supports — taking the engine path's
columns, extract parameters, gathering batches — its module declares
(``capabilities(config)``, ``component.Capabilities``) and the pipeline reads before it
creates it.

A :class:`~sessionlens.collector.pdata.Batch` goes from step to step. On the engine path,
receivers hand on requests as the bytes they received; the decode stage
(``collector/engine.py``), right after the leading processors that gather (``batch``), turns
them into the engine path's columns or the span path's spans. Every processor declaring
``columns`` takes both forms; with a processor that does not, or an exporter without an
``engine_client``, the engine path is off and receivers decode requests into spans.

A receiver acknowledges its request only when its next consumer returns: by then the
exporter's ``export`` has returned, so the spans are in ClickHouse or the exporter's
fsynced spool. ``ExportUnavailable`` from anywhere downstream reaches the receiver, which
answers UNAVAILABLE with RetryInfo. Processors isolate the spans they fail on
(``collector/processorhelper.py``); the exporter stage here does the same for the exporter.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sessionlens.collector import engine
from sessionlens.collector.component import Capabilities, Consumer, Exporter, Settings
from sessionlens.collector.config import CollectorConfig, ComponentSpec
from sessionlens.collector.pdata import Batch
from sessionlens.collector.processorhelper import step

log = logging.getLogger("sessionlens.collector")

# Data-flow order; processors among themselves in config order (see shutdown).
_SHUTDOWN_ORDER = {"receivers": 0, "processors": 1, "exporters": 2, "extensions": 3}


class PipelineHost:
    """What components may ask of the running collector (``component.Host``)."""

    def __init__(self, inactivity_timeout: float | None = None) -> None:
        self.exporter: Exporter | None = None
        self.extensions: dict[str, Any] = {}
        self.export_listeners: list = []
        self.inactivity_timeout = inactivity_timeout
        """Seconds: the autosession processor's ``inactivity_timeout`` (None without one)."""
        self.engine_path = False
        """Whether requests go downstream as bytes (the engine path's decode stage is on);
        else receivers decode them, on their own threads."""

    def on_exported(self, listener) -> None:
        """Call ``listener(batch)`` after each batch the exporter made durable (its spans
        and columns are the durable ones).

        For extensions (the sessions API's live stream), registered in their ``start``. It
        runs on the acknowledging thread: it must be quick and must not raise.
        """
        self.export_listeners.append(listener)

    def storage_client(self):
        """A new client on the exporter's storage, or None if the exporter has none."""
        return self.exporter.new_client() if self.exporter is not None else None

    @property
    def database(self) -> str | None:
        return self.exporter.database if self.exporter is not None else None

    def spooled(self, columns: tuple[str, ...]):
        """Columns of the spans the exporter holds but has not stored yet (none without a spool)."""
        return self.exporter.spooled(columns) if self.exporter is not None else iter(())

    def extension(self, component_id: str) -> Any:
        """A started extension by its id (e.g. ``bearertokenauth``), or None."""
        return self.extensions.get(component_id)


class _Exporting:
    """The exporter stage: ``export`` / ``export_columns``, isolated span by span, then
    the listeners of durable batches."""

    def __init__(self, spec: ComponentSpec, exporter: Exporter, columns: bool, listeners: list) -> None:
        self._export = exporter.export
        self._export_columns = exporter.export_columns if columns else None
        self._what = f"exporter {spec.id}"
        self._listeners = listeners

    def consume(self, batch: Batch) -> None:
        step(batch, self._what, self._export_columns, self._export)
        for listener in self._listeners:  # told of the durable spans only
            try:
                listener(batch)
            except Exception:  # the spans are durable: a listener's bug must not fail the ack
                log.exception("an export listener failed")


class _Decoding:
    """The decode stage: requests become columns (engine path) or spans."""

    def __init__(self, decoder: engine.Decoder | None, next_consumer: Consumer) -> None:
        self._decoder = decoder
        self._next = next_consumer
        self._lock = threading.Lock()  # one engine client; with ``batch`` in front, one caller anyway

    def consume(self, batch: Batch) -> None:
        if batch.requests:
            if self._decoder is None:
                requests, batch.requests = batch.requests, []
                for request in requests:
                    batch.spans.extend(engine.decode_in_python(request))
            else:
                with self._lock:
                    self._decoder.decode(batch)
        if batch.spans or batch.columns is not None:
            self._next.consume(batch)


class _NotStarted:
    def consume(self, batch: Batch) -> None:
        raise RuntimeError("pipeline not started")


class Pipeline:
    """Creates, starts and stops the configured components and links them."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        # The exporter stores the sessions' inactivity timeout where the views read their
        # status from, so the processor's setting is the one source of truth.
        timeouts = [
            spec.config.inactivity_timeout for spec in config.processors if spec.module.TYPE == "autosession"
        ]
        self.host = PipelineHost(timeouts[0] if timeouts else None)
        self._started: list[tuple[ComponentSpec, Any]] = []
        self._decoder: engine.Decoder | None = None
        self._head: Consumer = _NotStarted()
        self.receivers: list[Any] = []

    def consume(self, batch: Batch) -> None:
        """Hand ``batch`` to the first step, as a receiver does; returns once it is durable."""
        self._head.consume(batch)

    def _settings(self, spec: ComponentSpec) -> Settings:
        return Settings(spec.id, self.host)

    def _start(self, spec: ComponentSpec, component: Any) -> None:
        component.start(self.host)
        self._started.append((spec, component))

    def start(self) -> None:
        """Start extensions, the exporter, processors from the last one back, then receivers
        (which go live last): each component starts after everything downstream of it.

        On failure everything started so far is shut down again and the error propagates.
        """
        try:
            for spec in self.config.extensions:
                extension = spec.module.create(spec.config, self.host)
                self._start(spec, extension)
                self.host.extensions[spec.id] = extension
            exporter_spec = self.config.exporter
            exporter: Exporter = exporter_spec.module.create(exporter_spec.config, self.host)
            self.host.exporter = exporter
            self._start(exporter_spec, exporter)
            head = self._wire(exporter_spec, exporter)
            self._head = head
            for spec in self.config.receivers:
                receiver = spec.module.create(spec.config, self._settings(spec), head)
                self._start(spec, receiver)
                self.receivers.append(receiver)
        except BaseException:
            self.shutdown()
            raise

    def _wire(self, exporter_spec: ComponentSpec, exporter: Exporter) -> Consumer:
        """Create and start the processors from the exporter backwards, each with its next
        consumer, the decode stage after the leading ones that gather; the first step."""
        specs = self.config.processors
        declared = [spec.module.capabilities(spec.config) for spec in specs]
        # The decode stage goes right after the leading processors that only gather
        # (batch); a gathering one further on merges decoded batches, which it can only
        # do for spans: the engine path is then off.
        gathering = 0
        while gathering < len(declared) and declared[gathering].gathers:
            gathering += 1
        later = any(c.gathers for c in declared[gathering:])
        plain = [c for c in declared if not c.gathers]
        connect = exporter.engine_client
        self._decoder = None if later or connect is None else self._engine_decoder(connect, plain)
        self.host.engine_path = self._decoder is not None
        consume: Consumer = _Exporting(exporter_spec, exporter, self._decoder is not None, self.host.export_listeners)
        for k in reversed(range(len(specs) + 1)):
            if k == gathering:
                consume = _Decoding(self._decoder, consume)
            if k == 0:
                break
            spec = specs[k - 1]
            processor = spec.module.create(spec.config, self._settings(spec), consume)
            self._start(spec, processor)
            consume = processor
        return consume

    @staticmethod
    def _engine_decoder(connect, processors: list[Capabilities]) -> engine.Decoder | None:
        """The engine path's decode stage, when every processor takes columns."""
        if not all(c.columns for c in processors):
            return None
        parameters: dict[str, Any] = {}
        for capabilities in processors:
            parameters.update(capabilities.extract_parameters)
        return engine.Decoder(connect, parameters)

    def endpoints(self) -> list[str]:
        """Where the receivers listen, e.g. ``OTLP/gRPC 127.0.0.1:4317``."""
        return [e for r in self.receivers for e in r.endpoints()]

    def shutdown(self) -> None:
        """Stop in data-flow order: receivers stop taking requests, each processor (``batch``
        first) flushes into a still-running downstream, the exporter stops last, then the
        extensions. Errors are logged, not raised, so every component stops."""
        position = {spec.id: i for i, spec in enumerate(self.config.processors)}
        started = sorted(self._started, key=lambda item: (_SHUTDOWN_ORDER[item[0].kind], position.get(item[0].id, 0)))
        self._started = []
        for spec, component in started:
            try:
                component.shutdown()
            except Exception:
                log.exception("shutting down %s %s failed", spec.kind, spec.id)
        self._head = _NotStarted()
        self.receivers.clear()
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
