"""Response body wrappers that tell an ``LLMCall`` what the application reads, and when it stops.

They pass every chunk through unchanged, read nothing ahead, and end the call's span when
the body is exhausted, closed, fails, or is dropped unread (garbage-collected).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from sessionlens.instrumentation.call import LLMCall


class _SyncStream:
    def __init__(self, inner: Any, call: LLMCall) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        try:
            for chunk in self._inner:
                call.chunk(chunk)
                yield chunk
        except GeneratorExit:
            call.finished()  # the application stopped reading
            raise
        except BaseException as exc:
            call.finished(exc)
            raise
        call.finished()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.finished()

    def __del__(self) -> None:
        self._call.finished()


class _AsyncStream:
    def __init__(self, inner: Any, call: LLMCall) -> None:
        self._inner = inner
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        call = self._call
        try:
            async for chunk in self._inner:
                call.chunk(chunk)
                yield chunk
        except GeneratorExit:
            call.finished()
            raise
        except BaseException as exc:
            call.finished(exc)
            raise
        call.finished()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._call.finished()

    def __del__(self) -> None:
        self._call.finished()


StreamWrapper = Callable[[Any, LLMCall], Any]


def stream_wrappers(module: Any) -> tuple[StreamWrapper, StreamWrapper]:
    """Sync and async body wrappers that are ``module``'s own stream types (httpx or httpx2 check them)."""
    sync = type("SessionLensSyncStream", (_SyncStream, module.SyncByteStream), {})
    async_ = type("SessionLensAsyncStream", (_AsyncStream, module.AsyncByteStream), {})
    return sync, async_
