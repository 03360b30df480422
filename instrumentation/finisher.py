"""Finishes LLM spans on a background thread, off the application's call path.

Parsing a response and setting a dozen attributes costs tens of microseconds of Python;
done here, it runs while the application waits on the network instead of delaying it —
the same reason the SDK's BatchSpanProcessor exports in the background. ``flush()``
drains the work (tests, shutdown); an exit hook drains it before the SDK's own shutdown.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

_log = logging.getLogger(__name__)

MAX_PENDING = 10_000
"""Beyond this backlog, work runs inline: memory stays bounded when the thread falls behind."""
POLL_SECONDS = 0.05
"""While calls keep coming the thread polls, so a call never pays for waking it (~20 µs)."""
IDLE_POLLS = 20
"""After this many empty polls (~1 s without calls) the thread parks until the next call."""


class Finisher:
    """A queue of span-finishing jobs and the daemon thread that runs them in order."""

    def __init__(self) -> None:
        self._jobs: deque[Callable[[], None]] = deque()
        self._wake = threading.Event()
        self._running = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._exit_hooked = False
        self._parked = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` soon, on the finisher thread. Never raises."""
        if len(self._jobs) >= MAX_PENDING:
            self._run(job)
            return
        self._jobs.append(job)
        if self._thread is None:
            self._start()
        if self._parked:
            self._parked = False
            self._wake.set()

    def flush(self) -> None:
        """Run every submitted job now (in the caller's thread) and wait for the one in flight."""
        while True:
            try:
                job = self._jobs.popleft()
            except IndexError:
                break
            self._run(job)
        with self._running:
            pass

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name="sessionlens-finisher", daemon=True)
                thread.start()
                if not self._exit_hooked:
                    # Registered at first use — normally after the SDK's TracerProvider exit hook,
                    # so it runs first (atexit is LIFO) and pending spans end before export shuts down.
                    atexit.register(self.flush)
                    self._exit_hooked = True
                self._thread = thread

    def _loop(self) -> None:
        empty_polls = 0
        while True:
            if self._drain():
                empty_polls = 0
            elif empty_polls < IDLE_POLLS:
                empty_polls += 1
                time.sleep(POLL_SECONDS)
            else:
                self._parked = True
                if self._jobs:  # a job came in while parking: submit() may have missed the flag
                    self._parked = False
                    continue
                self._wake.wait()
                self._wake.clear()
                empty_polls = 0

    def _drain(self) -> bool:
        ran = False
        while True:
            with self._running:
                try:
                    job = self._jobs.popleft()
                except IndexError:
                    return ran
                self._run(job)
                ran = True

    @staticmethod
    def _run(job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            _log.debug("sessionlens: could not finish an LLM span", exc_info=True)

    def _after_fork(self) -> None:
        # The child has no finisher thread (it starts its own on first use), and the
        # parent's pending spans are the parent's to finish.
        self._jobs.clear()
        self._thread = None
        self._wake = threading.Event()
        self._running = threading.Lock()
        self._start_lock = threading.Lock()
        self._parked = False


FINISHER = Finisher()
"""The process's finisher."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FINISHER._after_fork)
