"""A sync ``httpx.Client`` for sync tests, sending each request through the async client's
transport on the harness's loop (not running while a sync test runs).

Why not Starlette's ``TestClient``: it runs the app on a loop of its own in another
thread, where the app's connections cannot join the test's transaction. httpx has no
sync ASGI transport; this is the few lines that bridge its sync API to the async one.
"""

from __future__ import annotations

import asyncio
import threading

import httpx

from fastapi_e2e.server import loop_thread


class LoopTransport(httpx.BaseTransport):
    """Send sync requests through ``transport`` on ``loop``, reading each body whole."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.transport = transport
        self.loop = loop
        self._lock = threading.Lock()  # threads of a sync test take turns on the loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # While a sync test uses live_server the loop runs in a helper thread, and
        # run_until_complete hands the request to it.
        helper = loop_thread.thread_of(self.loop)
        if helper is not None:
            from_async_code = helper.is_current()
        else:  # a loop run by another thread of the sync test holds the lock
            from_async_code = self.loop.is_running() and not self._lock.locked()
        if from_async_code:
            raise RuntimeError(
                "The harness's sync client was used while its event loop runs (from async "
                "code): use the async client there."
            )
        with self._lock:
            return loop_thread.run_until_complete(self.loop, self._send(request))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # a sync request's body (a generator's too), as bytes
        headers = httpx.Headers(request.headers)
        for name in ("transfer-encoding", "content-length"):  # httpx sets them for bytes
            headers.pop(name, None)
        async_request = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=body,
            extensions=request.extensions,
        )
        response = await self.transport.handle_async_request(async_request)
        # The raw bytes: the sync client decodes them (gzip) once, as it would a server's.
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        pass  # the async transport is closed with the test's async client
