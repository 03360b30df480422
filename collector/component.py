"""What a pipeline component is, in the shape of the OpenTelemetry Collector's components.

Each component module (a receiver, a processor, an exporter, an extension) exposes:

- ``TYPE``: the name used in ``otel-config.yaml`` (``normalize``, ``autosession`` …; a
  config key ``TYPE/name`` makes a second instance of the same type);
- ``Config``: a dataclass whose fields are the component's config keys, all defaulted;
- the factory ``create``. A component that feeds another — a receiver, a processor — is
  given the next one when it is created, ``create(config, settings, next_consumer)``, and
  calls nothing else downstream; the exporter and extensions are ``create(config, host)``.

A processor module also declares what its processors support, ``capabilities(config) ->
Capabilities`` (:class:`ProcessorFactory`): the pipeline reads it before it creates the
processor, since where the decode stage goes depends on it.

Every processor, and the pipeline's own stages, is a :class:`Consumer`: one
``consume(batch)`` entry point that returns once the batch went all the way downstream.
``collector/processorhelper.py`` turns a processor's pure functions into one. The config
loader turns a YAML mapping into ``Config`` (unknown keys are an error, durations like
``30m`` become seconds) and the pipeline (``collector/pipeline.py``) creates the components
from the exporter backwards, each with its next consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sessionlens.collector.engine import SpanColumns
    from sessionlens.collector.pdata import Batch, Span


class Consumer(Protocol):
    """Takes a batch on to storage: returns once it is durable downstream, or raises."""

    def consume(self, batch: Batch) -> None:
        """Pass ``batch`` on. ``ExportUnavailable`` means nothing of it is durable: retry later."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a processor supports, as its module declares it (``capabilities(config)``)."""

    gathers: bool = False
    """It merges the batches of concurrent calls before its next consumer sees them
    (``batch``). It can do so only for requests not decoded yet: the engine path's decode
    stage goes right after the leading processors that gather, and a gathering processor
    after one that does not turns the engine path off."""
    columns: bool = False
    """It takes the engine path's columns (``Batch.columns``) as well as spans. With a
    processor that does not, every request takes the span path."""
    extract_parameters: Mapping[str, object] = field(default_factory=dict)
    """Parameters of the engine's column extract (``schema/ingest.py``) this processor sets:
    the rules that send a span to the span path because the processor would change it
    (``normalize``'s limits and aliases)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the pipeline tells a factory besides the component's ``Config``."""

    id: str
    """The component's id in the config (``normalize``, ``tag/second``), as messages name it."""
    host: Host


class Processor(Consumer, Protocol):
    """A running processor: a consumer that feeds the next consumer it was created with."""

    def start(self, host: Host) -> None:
        """Called once before the first batch (e.g. to rebuild state from storage)."""
        ...

    def shutdown(self) -> None:
        """Hand on what is held (``batch``), then stop; the next consumer still runs."""
        ...


class ProcessorFactory(Protocol):
    """A processor module (``processors/normalize.py`` …), as the pipeline uses it."""

    TYPE: str
    Config: type

    def capabilities(self, config: Any) -> Capabilities:
        """What the processors this config makes support."""
        ...

    def create(self, config: Any, settings: Settings, next_consumer: Consumer) -> Processor:
        """A processor that hands what it processed to ``next_consumer``."""
        ...


class Receiver(Protocol):
    """Takes requests from clients and hands them to its next consumer (``create``'s)."""

    def start(self, host: Host) -> None:
        """Listen; requests may arrive as soon as this returns."""
        ...

    def endpoints(self) -> list[str]:
        """Where it listens, e.g. ``OTLP/gRPC 127.0.0.1:4317``."""
        ...

    def shutdown(self) -> None:
        """Stop taking requests; return once those in flight are answered."""
        ...


class Exporter(Protocol):
    """The last component: makes spans durable. The pipeline wraps it in a consumer that
    isolates the spans it fails on, as ``collector/processorhelper.py`` does for processors."""

    def export(self, spans: list[Span]) -> None:
        """Return once ``spans`` are durable; raise :class:`ExportUnavailable` if they cannot be now."""
        ...

    @property
    def engine_client(self) -> Callable[[], Any] | None:
        """A factory of clients on the engine that decodes requests into the columns
        ``export_columns`` takes; None: this exporter takes spans only (and need not have
        ``export_columns``)."""
        ...

    def export_columns(self, columns: SpanColumns) -> None:
        """``export`` for the engine path's columns."""
        ...

    def new_client(self) -> Any | None:
        """A new clickhouse-connect client on the exporter's storage, or None if it has none."""
        ...

    @property
    def database(self) -> str | None:
        """The ClickHouse database it writes to, or None."""
        ...

    def spooled(self, columns: tuple[str, ...]) -> Iterator[tuple]:
        """The named ``otel_traces`` columns of each span acknowledged but not stored yet."""
        ...

    def start(self, host: Host) -> None: ...

    def shutdown(self) -> None: ...


class Extension(Protocol):
    """A component outside the data flow (``bearertokenauth``, ``sessions_api``)."""

    def start(self, host: Host) -> None: ...

    def shutdown(self) -> None: ...


class Host(Protocol):
    """What a component may ask of the running collector."""

    def storage_client(self):
        """A new clickhouse-connect client on the exporter's storage, or None if there is none."""
        ...

    @property
    def database(self) -> str | None:
        """The ClickHouse database the exporter writes to."""
        ...

    def spooled(self, columns: tuple[str, ...]) -> Iterator[tuple]:
        """The named ``otel_traces`` columns of each span acknowledged but not in ClickHouse
        yet (in the exporter's spool), oldest first."""
        ...

    def extension(self, component_id: str):
        """A started extension by its id (e.g. ``bearertokenauth``), or None."""
        ...

    def on_exported(self, listener: Callable[[Batch], None]) -> None:
        """Call ``listener(batch)`` after each batch the exporter made durable."""
        ...

    @property
    def inactivity_timeout(self) -> float | None:
        """Seconds after its last span a session ends (the autosession processor's), or None."""
        ...

    @property
    def engine_path(self) -> bool:
        """Whether receivers hand requests on as bytes, for the decode stage (the engine
        path); else they decode them themselves, on their own threads."""
        ...


class ExportUnavailable(Exception):
    """Spans could not be made durable now (spool full, storage trouble): retry later.

    The receiver answers UNAVAILABLE with RetryInfo carrying ``retry_after`` seconds.
    """

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ListenError(Exception):
    """A server cannot listen on its endpoint (address in use, bad address)."""
