"""``batch``: group commit of concurrent requests' spans.

Unlike the OpenTelemetry Collector's batch processor, which acknowledges spans as soon as
they are queued (and loses them if the process dies), this one holds every request until
the batch it joined has gone downstream: spans of concurrent requests are gathered while
the previous batch is still being stored (or, with ``flush_when_idle: false``, until
``send_batch_size`` spans wait or ``timeout`` has passed since the oldest arrived), handed
on in one call (split at ``send_batch_max_size``), and each request is released with that
call's outcome. So the receiver still acknowledges only exported spans, while storage sees
large batches under load and idle requests are not held back.

It has the shape of every processor — created with its next consumer, itself a consumer —
but is not made of per-batch functions (``collector/processorhelper.py``): it calls its
next consumer from its own thread with what it gathered, and declares so (``gathers``), so
that the pipeline puts the decode stage after it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sessionlens.collector.component import Capabilities, Consumer, ExportUnavailable, Host, Settings
from sessionlens.collector.pdata import Batch
from sessionlens.durations import Duration

TYPE = "batch"


@dataclass
class Config:
    send_batch_size: int = 8192
    """Spans waiting that trigger a downstream call without waiting for ``timeout``."""
    send_batch_max_size: int = 0
    """Upper bound of one downstream call (0: no bound)."""
    timeout: Duration = Duration(0.2)
    """Longest a span waits for others before its batch goes downstream."""
    flush_when_idle: bool = True
    """Send at once when nothing is on its way downstream: spans then wait only while the
    previous batch is being stored, and batches grow with the load (classic group commit).
    False: wait for ``send_batch_size`` or ``timeout`` as the Collector's batch does."""
    max_queued_spans: int = 65_536
    """Spans waiting at most; beyond it requests are refused (UNAVAILABLE) to bound memory."""

    def __post_init__(self) -> None:
        if self.send_batch_size < 1:
            raise ValueError(f"send_batch_size must be at least 1, got {self.send_batch_size}")
        if self.send_batch_max_size and self.send_batch_max_size < self.send_batch_size:
            raise ValueError(
                f"send_batch_max_size must be 0 (no bound) or at least send_batch_size "
                f"({self.send_batch_size}), got {self.send_batch_max_size}"
            )
        if self.max_queued_spans < self.send_batch_size:
            raise ValueError(
                f"max_queued_spans must be at least send_batch_size ({self.send_batch_size}), "
                f"got {self.max_queued_spans}"
            )


class _Request:
    __slots__ = ("batch", "size", "arrived", "done", "error")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.size = len(batch)
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit:
    """Gathers concurrent calls into batches; each call returns when its batch is done."""

    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        self._config = config
        self._next = next_consumer
        self._pending: list[_Request] = []
        self._queued = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self, host: Host) -> None:
        self._thread = threading.Thread(target=self._run, name="batch", daemon=True)
        self._thread.start()

    def consume(self, batch: Batch) -> None:
        """Queue ``batch``; return once it went to the next consumer, or raise what that raised."""
        request = _Request(batch)
        if not request.size:
            return
        with self._cond:
            if self._stopping:
                raise ExportUnavailable("the collector is shutting down", retry_after=5.0)
            if self._queued and self._queued + request.size > self._config.max_queued_spans:
                raise ExportUnavailable(
                    f"collector overloaded: {self._queued} spans waiting for storage",
                    retry_after=1.0,
                )
            self._pending.append(request)
            self._queued += request.size
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error

    def shutdown(self) -> None:
        """Send everything queued downstream, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _take(self) -> list[_Request] | None:
        """Wait for a batch to be due and take its requests (None: stopped and drained)."""
        config = self._config
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                self._cond.wait()
            deadline = self._pending[0].arrived + config.timeout
            while (
                not config.flush_when_idle
                and self._queued < config.send_batch_size
                and not self._stopping
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            limit = config.send_batch_max_size or config.max_queued_spans
            taken, count = [], 0
            for request in self._pending:
                if taken and count + request.size > limit:
                    break
                taken.append(request)
                count += request.size
            del self._pending[: len(taken)]
            self._queued -= count
            return taken

    def _run(self) -> None:
        while (requests := self._take()) is not None:
            self._send(requests)

    def _send(self, requests: list[_Request]) -> None:
        # Decoded spans beyond send_batch_max_size go down in several calls; requests not
        # decoded yet go whole (the decode stage downstream sees their spans).
        limit = self._config.send_batch_max_size
        batch = Batch.merged([request.batch for request in requests])
        spans = batch.spans
        error: BaseException | None = None
        try:
            if limit and len(spans) > limit:
                for start in range(0, len(spans), limit):
                    self._next.consume(Batch(spans[start : start + limit]))
                if batch.requests:
                    self._next.consume(Batch(requests=batch.requests))
            else:
                self._next.consume(batch)
        except BaseException as exc:  # every waiting request gets the outcome
            error = exc
        for request in requests:
            request.error = error
            request.done.set()


def capabilities(config: Config) -> Capabilities:
    """It gathers (so the decode stage goes after it), and takes no columns: batches reach
    it before the decode stage."""
    return Capabilities(gathers=True)


def create(config: Config, settings: Settings, next_consumer: Consumer) -> GroupCommit:
    """A group commit feeding ``next_consumer`` from its own thread (once started)."""
    return GroupCommit(config, next_consumer)
