"""httpx's ASGITransport, with the client's read timeout enforced.

ASGITransport ignores timeouts, so a route that never answers would hang the test
run; here it raises ``httpx.ReadTimeout`` like a real server connection would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from fastapi_e2e.errors import REQUEST_TIMEOUT


class TimeoutASGITransport(httpx.ASGITransport):
    """ASGITransport that gives up after the request's read timeout.

    ``explain_timeout`` returns extra text for the error (what the app was waiting for).
    """

    def __init__(
        self, *args: Any, explain_timeout: Callable[[], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.explain_timeout = explain_timeout

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
            if self.explain_timeout is not None:
                message += self.explain_timeout()
            raise httpx.ReadTimeout(message, request=request) from None
