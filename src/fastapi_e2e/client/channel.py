"""A one-reader queue between the app's task and the client, on the test's loop.

Cheaper than ``asyncio.Queue`` plus ``asyncio.wait_for`` (which, before Python 3.12,
starts a task per call): a wait is one future and, with a timeout, one timer.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class _Expired(Exception):
    """Set on a waiter whose timer fired."""


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


class Channel(Generic[T]):
    """Items put by one side, taken in order by the other; ``close()`` ends it."""

    __slots__ = ("_items", "_loop", "_waiter", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        """No more items will come (those queued can still be taken)."""

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, timeout: float | None = None) -> T | None:
        """The next item; None once closed and empty. ``TimeoutError`` after ``timeout`` s."""
        while not self._items:
            if self.closed:
                return None
            waiter = self._loop.create_future()
            self._waiter = waiter
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            except _Expired:
                raise asyncio.TimeoutError from None
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._items.popleft()
