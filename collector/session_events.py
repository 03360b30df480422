"""The live stream behind ``GET /v1/events``: a session row each time stored spans change it.

The pipeline calls :meth:`SessionEvents.exported` after each durable batch (only while
someone subscribes): it notes the (project, session) keys of the batch, nothing more, so
the acknowledging thread pays a set insert per span. A poller thread reads the
``session_list`` rows of the noted keys once per ``interval`` and sends each row that
changed to the subscribers of its project. The exporter stores a durable batch a moment
later, so a key whose row has not changed yet is asked again for up to ``settle`` seconds.
Subscribers are bounded in number, and each in how many rows may wait for it: a client too
slow to read its stream is disconnected rather than letting memory grow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sessionlens import conventions

log = logging.getLogger("sessionlens.collector")

Key = tuple[str, str]
Reader = Callable[[list[Key]], list[dict[str, Any]]]


class TooManySubscribers(Exception):
    """The stream has its maximum number of subscribers; retry later."""


class Subscriber:
    """One client's stream: rows queued on its event loop, for one project (None: all)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, project: str | None, depth: int) -> None:
        self.loop = loop
        self.project = project
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(depth)
        self.closed = False

    def _put(self, row: dict[str, Any] | None) -> None:  # on the subscriber's loop
        if self.closed:
            return
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:  # too slow: end its stream (None), it may reconnect
            self.closed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def send(self, row: dict[str, Any] | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self._put, row)
        except RuntimeError:  # its loop is closed: the server stopped
            self.closed = True


class SessionEvents:
    """Notes changed sessions, reads their rows, fans them out (see the module docstring)."""

    def __init__(self, read: Reader, *, interval: float = 1.0, settle: float = 10.0,
                 max_subscribers: int = 64, depth: int = 1000, max_pending: int = 50_000) -> None:
        self._read = read
        self.interval = interval
        self.settle = settle
        self.max_subscribers = max_subscribers
        self.depth = depth
        self.max_pending = max_pending
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._noted: set[Key] = set()
        self._waiting: dict[Key, float] = {}  # key → until when to keep asking (poller only)
        # (last_seen, llm_calls, trace_count, errors) last sent per session, bounded
        self._sent: OrderedDict[Key, tuple] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the pipeline side ----------------------------------------------------------

    def exported(self, batch) -> None:
        """The pipeline's export listener: note the sessions of a durable batch."""
        if not self._subscribers:
            return
        project_key, session_key = conventions.PROJECT, conventions.SESSION_ID
        # as the table derives them: the project from the resource, the session id from the
        # span (or its resource), a span without one being a session of its trace
        keys = {
            (s.resource.get(project_key, ""), s.get(session_key) or s.trace_id.hex())
            for s in batch.spans
        }
        if batch.columns is not None:
            keys |= batch.columns.session_keys()
        with self._lock:
            if len(self._noted) < self.max_pending:
                self._noted |= keys

    # --- subscribers ----------------------------------------------------------------

    def subscribe(self, project: str | None) -> Subscriber:
        """A new subscriber on the running event loop; raises :class:`TooManySubscribers`."""
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                raise TooManySubscribers(
                    f"the event stream has its maximum of {self.max_subscribers} subscribers")
            subscriber = Subscriber(asyncio.get_running_loop(), project, self.depth)
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    # --- the poller -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="session-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and end every subscriber's stream."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            subscribers, self._subscribers = list(self._subscribers), set()
        for subscriber in subscribers:
            subscriber.send(None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # storage trouble: keep the keys, try again next time
                log.warning("reading changed sessions for the event stream failed", exc_info=True)

    def poll(self) -> int:
        """Read the noted sessions and send the changed rows; the number of rows sent."""
        now = time.monotonic()
        with self._lock:
            noted, self._noted = self._noted, set()
            subscribers = list(self._subscribers)
        for key in noted:
            self._waiting[key] = now + self.settle
        if not subscribers:
            self._waiting.clear()
            return 0
        if not self._waiting:
            return 0
        rows = self._read(list(self._waiting))
        sent = 0
        for row in rows:
            key = (row["project"], row["session_id"])
            version = (row.get("last_seen"), row.get("llm_calls"), row.get("trace_count"),
                       row.get("errors"))
            if self._sent.get(key) == version:
                continue  # not stored yet (or nothing visible changed): ask again next time
            self._sent[key] = version
            self._sent.move_to_end(key)
            if len(self._sent) > self.max_pending:
                self._sent.popitem(last=False)
            self._waiting.pop(key, None)
            for subscriber in subscribers:
                if subscriber.project is None or subscriber.project == row["project"]:
                    subscriber.send(row)
            sent += 1
        for key, until in list(self._waiting.items()):
            if until <= now:
                del self._waiting[key]
        return sent
