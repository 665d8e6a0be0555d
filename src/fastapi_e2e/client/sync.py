"""A sync ``httpx.Client`` for sync tests, sending each request through the async client's
transport on the harness's loop (not running while a sync test runs).

Why not Starlette's ``TestClient``: it runs the app on a loop of its own in another
thread, where the app's connections cannot join the test's transaction. httpx has no
sync ASGI transport; this is the few lines that bridge its sync API to the async one.
"""

from __future__ import annotations

import asyncio

import httpx


class LoopTransport(httpx.BaseTransport):
    """Send sync requests through ``transport`` on ``loop``, reading each body whole."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.transport = transport
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.loop.is_running():
            raise RuntimeError(
                "The harness's sync client was used while its event loop runs (from async "
                "code): use the async client there."
            )
        return self.loop.run_until_complete(self._send(request))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # a sync request's body, sent as bytes
        async_request = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        response = await self.transport.handle_async_request(async_request)
        content = await response.aread()
        await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        pass  # the async transport is closed with the test's async client
