"""Run the session loop in a helper thread while a sync test blocks the main thread.

A sync test (``def test_...``) runs with the session loop stopped, so a server on that
loop could not answer the requests the test makes (sync Playwright, ``httpx.get``).
``LoopThread`` runs the loop in a helper thread for that while; ``run_until_complete``
then hands the harness's own work (a test's setup, the sync client's requests) to
that thread instead of running the loop on the caller's.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

STOP_TIMEOUT = 10.0

# Which helper thread runs a loop now: a fact about the process, like asyncio's own
# running loop per thread, so the harness's callers (fixtures, the sync client's
# transport) find it from the loop alone.
_RUNNING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopThread] = (
    weakref.WeakKeyDictionary()
)


class LoopThread:
    """``loop.run_forever()`` in a daemon thread, from ``start()`` to ``stop()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread: threading.Thread | None = None
        self._paused = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def is_current(self) -> bool:
        """Whether the caller runs on this thread (code on the loop itself)."""
        return self._thread is threading.current_thread()

    def start(self) -> None:
        if self._thread is not None:
            return
        if _RUNNING.get(self.loop) is not None or self.loop.is_running():
            raise RuntimeError("fastapi-e2e: the session loop is already running")
        thread = threading.Thread(
            target=self.loop.run_forever, name="fastapi-e2e session loop", daemon=True
        )
        self._thread = thread
        _RUNNING[self.loop] = self
        thread.start()

    def stop(self) -> None:
        """Stop the loop after its current iteration and wait for the thread to end."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                raise RuntimeError(
                    "fastapi-e2e: the session loop did not stop within "
                    f"{STOP_TIMEOUT:g} s after the sync test: something on it blocks "
                    "(a sync call in an async route or task). Make that call async, or "
                    "run it with asyncio.to_thread()."
                )
        finally:
            _RUNNING.pop(self.loop, None)

    def pause(self) -> None:
        """Stop the thread for a while (an async fixture's setup or teardown needs the
        loop on the main thread); ``resume()`` starts it again."""
        if self._thread is not None:
            self.stop()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.start()


def thread_of(loop: asyncio.AbstractEventLoop) -> LoopThread | None:
    """The helper thread running ``loop`` now, if any."""
    return _RUNNING.get(loop)


def run_until_complete(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` and return its result, whichever thread runs the loop.

    Called from the loop's own helper thread (async code using a sync API) it raises
    instead of waiting for itself forever.
    """
    helper = _RUNNING.get(loop)
    if helper is None:
        return loop.run_until_complete(coro)
    if helper.is_current():
        coro.close()
        raise RuntimeError(
            "fastapi-e2e: sync harness code (the sync client) was called from async code "
            "on the session loop, which would wait for itself: use the async client there."
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
