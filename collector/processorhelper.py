"""A processor's pure functions → a pipeline consumer (the Go Collector's processorhelper).

A processor module writes what it does to a batch as functions — ``process(spans)`` for
the span path, and, when it declares ``columns``, ``process_columns(columns)`` for the
engine path — and its ``create`` hands them to :class:`FunctionProcessor` with the next
consumer. The consumer that results is the same for every such processor:

- one batch at a time (a lock per processor: its state need not be thread-safe);
- one bad span never costs another: when a function raises for a batch (anything but
  ``ExportUnavailable``, which is about storage, not about the spans), it runs again one
  span at a time (:func:`isolated`), the spans it still fails on are rejected
  (``Span.rejected``, reported by the receiver through ``partial_success``) and the others
  go on. Columns it fails on take the span path (:func:`step`). This is the one place that
  isolates span failures (the pipeline's exporter stage uses :func:`step` too); the
  functions themselves just raise. (A function run again may meet spans it already changed
  before it failed: processors keep every span valid after each change.)
- what is left goes to the next consumer, whose outcome (``ExportUnavailable``) the caller gets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sessionlens.collector.component import Consumer, ExportUnavailable, Host, Settings

if TYPE_CHECKING:
    from sessionlens.collector.engine import SpanColumns
    from sessionlens.collector.pdata import Batch, Span

log = logging.getLogger("sessionlens.collector")

ProcessSpans = Callable[["list[Span]"], "list[Span] | None"]
"""Changes a batch of spans (in place, or returns the spans to pass on)."""
ProcessColumns = Callable[["SpanColumns"], None]
"""Sets the engine path's decisions of a batch's spans (``SpanColumns``)."""

_REPORT_EVERY_S = 10.0
_last_report = [0.0]  # when a span failure was last logged (a flood of bad spans is one line per interval)


def isolated(function: ProcessSpans, what: str, spans: list[Span]) -> list[Span]:
    """``function(spans)``, except that a span it fails on is rejected alone.

    Returns the spans to pass on: what ``function`` returned (None: ``spans``), without the
    spans it failed on when run on one span at a time. ``ExportUnavailable`` propagates.
    """
    try:
        result = function(spans)
        return spans if result is None else result
    except ExportUnavailable:
        raise
    except Exception as exc:
        failure = exc
    kept: list[Span] = []
    rejected = 0
    for span in spans:
        try:
            result = function([span])
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


def step(batch: Batch, what: str, on_columns: ProcessColumns | None, on_spans: ProcessSpans) -> None:
    """Run a step on both forms of ``batch``: its columns (when it has any; a failure, or
    no ``on_columns``, hands them to the span path) and then its spans, isolated span by span."""
    if batch.columns is not None and not _on_columns(batch.columns, what, on_columns):
        batch.spans.extend(batch.columns.to_spans())
        batch.columns = None
    if batch.spans:
        batch.spans = isolated(on_spans, what, batch.spans)


def _on_columns(columns: SpanColumns, what: str, on_columns: ProcessColumns | None) -> bool:
    """Whether ``on_columns`` took the columns (False: their spans take the span path)."""
    if on_columns is None:
        return False
    try:
        on_columns(columns)
    except ExportUnavailable:
        raise
    except Exception:  # the span path isolates the span it fails on
        log.warning("%s failed on columns; their spans take the span path", what, exc_info=True)
        return False
    return True


class FunctionProcessor:
    """A processor made of functions (see the module docstring); a ``component.Processor``."""

    def __init__(
        self,
        settings: Settings,
        next_consumer: Consumer,
        process: ProcessSpans,
        *,
        process_columns: ProcessColumns | None = None,
        start: Callable[[Host], None] | None = None,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        self._next = next_consumer
        self._process = process
        self._process_columns = process_columns
        self._start = start
        self._shutdown = shutdown
        self._what = f"processor {settings.id}"
        self._lock = threading.Lock()

    def consume(self, batch: Batch) -> None:
        with self._lock:
            step(batch, self._what, self._process_columns, self._process)
        if batch.spans or batch.columns is not None:
            self._next.consume(batch)

    def start(self, host: Host) -> None:
        if self._start is not None:
            self._start(host)

    def shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown()
