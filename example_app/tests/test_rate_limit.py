"""Per-client fixed-window rate limiting."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from example_app.ratelimit import FixedWindowRateLimiter
from example_app.tests.helpers import assert_problem


async def test_exceeding_the_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # monkeypatch restores the limit even if the app instance outlives this test.
    monkeypatch.setattr(app.state.rate_limiter, "limit", 3)

    for _ in range(3):
        assert (await client.get("/users")).status_code == 200
    response = await client.get("/users")

    body = assert_problem(response, 429)
    assert body["title"] == "Too Many Requests"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_limit_is_tracked_per_client(
    client: httpx.AsyncClient,
    app: FastAPI,
    api_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.rate_limiter, "limit", 2)

    for _ in range(2):
        assert (await client.get("/users")).status_code == 200
    assert (await client.get("/users")).status_code == 429
    # A caller identified by its API key has its own budget.
    assert (await client.get("/users", headers=api_headers)).status_code == 200
    # An invalid key does not buy a fresh budget.
    assert (await client.get("/users", headers={"X-API-Key": "bogus"})).status_code == 429


async def test_health_is_not_rate_limited(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.rate_limiter, "limit", 1)

    for _ in range(3):
        assert (await client.get("/health")).status_code == 200


def test_window_rollover_resets_counters() -> None:
    now = 0.0
    limiter = FixedWindowRateLimiter(limit=1, window_seconds=60, clock=lambda: now)

    assert limiter.hit("a") is None
    assert limiter.hit("a") == 60.0
    assert limiter.hit("b") is None
    now = 59.5
    assert limiter.hit("a") == 0.5
    now = 60.0
    assert limiter.hit("a") is None
