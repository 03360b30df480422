"""What a pipeline component is, in the shape of the OpenTelemetry Collector's components.

Each component module (a receiver, a processor, an exporter, an extension) exposes:

- ``TYPE``: the name used in ``otel-config.yaml`` (``normalize``, ``autosession`` …; a
  config key ``TYPE/name`` makes a second instance of the same type);
- ``Config``: a dataclass whose fields are the component's config keys, all defaulted;
- ``create(config, host) -> component``: the factory.

The config loader turns a YAML mapping into ``Config`` (unknown keys are an error, durations
like ``30m`` become seconds) and the pipeline wires the created components in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sessionlens.collector.pdata import Span


class Processor(Protocol):
    """Transforms a batch of spans; may keep state of its own between batches."""

    def process(self, spans: list[Span]) -> list[Span]:
        """Return the batch to pass on (usually the same list, changed in place)."""
        ...

    def start(self, host: Host) -> None:
        """Called once before the first batch (e.g. to rebuild state from storage)."""
        ...

    def shutdown(self) -> None: ...


class Host(Protocol):
    """What a component may ask of the running collector."""

    def storage_client(self):
        """A new clickhouse-connect client on the exporter's storage, or None if there is none."""
        ...

    @property
    def database(self) -> str:
        """The ClickHouse database the exporter writes to."""
        ...

    def spooled(self, columns: tuple[str, ...]) -> Iterator[tuple]:
        """The named ``otel_traces`` columns of each span acknowledged but not in ClickHouse
        yet (in the exporter's spool), oldest first."""
        ...

    def extension(self, component_id: str):
        """A started extension by its id (e.g. ``bearertokenauth``), or None."""
        ...

    def on_exported(self, listener) -> None:
        """Call ``listener(spans)`` after each batch the exporter made durable."""
        ...

    @property
    def inactivity_timeout(self) -> float | None:
        """Seconds after its last span a session ends (the autosession processor's), or None."""
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
