"""httpx's ASGITransport, with the client's read timeout enforced.

ASGITransport ignores timeouts, so a route that never answers would hang the test
run; here it raises ``httpx.ReadTimeout`` like a real server connection would.
"""

from __future__ import annotations

import asyncio

import httpx

from fastapi_e2e.errors import REQUEST_TIMEOUT


class TimeoutASGITransport(httpx.ASGITransport):
    """ASGITransport that gives up after the request's read timeout."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("read")
        if timeout is None:
            return await super().handle_async_request(request)
        try:
            return await asyncio.wait_for(super().handle_async_request(request), timeout)
        except asyncio.TimeoutError:
            message = REQUEST_TIMEOUT.format(
                method=request.method, url=request.url, timeout=timeout
            )
            raise httpx.ReadTimeout(message, request=request) from None
