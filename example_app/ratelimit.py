"""Per-client fixed-window rate limiting.

The limiter lives on ``app.state`` so each app instance (and therefore each
test app) has its own counters, and its ``limit`` can be adjusted at runtime.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from fastapi import Request

from example_app.auth import API_KEY_HEADER
from example_app.errors import RateLimited


class FixedWindowRateLimiter:
    """Allow ``limit`` hits per client key in each aligned window of ``window_seconds``."""

    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str) -> float | None:
        """Count a request; return seconds until retry if it exceeds the limit, else None."""
        # No await in here, so concurrent requests on one event loop cannot interleave.
        now = self._clock()
        window = int(now // self.window_seconds)
        if window != self._window:
            # Dropping all counters at rollover keeps memory bounded by the
            # number of clients seen in a single window.
            self._window = window
            self._counts.clear()
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        if count > self.limit:
            return (window + 1) * self.window_seconds - now
        return None

    def reset(self) -> None:
        """Forget all counters."""
        self._window = -1
        self._counts.clear()


def client_key(request: Request) -> str:
    """Identify the caller: by API key when it is a valid one, otherwise by client host."""
    api_key = request.headers.get(API_KEY_HEADER)
    # Only trust valid keys as identity; otherwise a caller could dodge the
    # limit by sending a fresh bogus key with each request.
    if api_key and api_key in request.app.state.settings.api_keys:
        return f"key:{api_key}"
    host = request.client.host if request.client else "unknown"
    return f"host:{host}"


async def enforce_rate_limit(request: Request) -> None:
    """Dependency rejecting the request with 429 when its client exhausted the window."""
    limiter: FixedWindowRateLimiter = request.app.state.rate_limiter
    retry_after = limiter.hit(client_key(request))
    if retry_after is not None:
        raise RateLimited(
            f"Rate limit of {limiter.limit} requests per "
            f"{limiter.window_seconds:g} seconds exceeded",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )
