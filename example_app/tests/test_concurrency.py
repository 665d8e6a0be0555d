"""Many simultaneous requests inside one test transaction."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import AuditEntry, User

CONCURRENT_REQUESTS = 50


async def test_concurrent_creates_all_succeed(
    client: httpx.AsyncClient, db_session: AsyncSession, api_headers: dict[str, str]
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(
                "/users",
                json={"email": f"concurrent-{n}@example.com", "name": f"User {n}"},
                headers=api_headers,
            )
            for n in range(CONCURRENT_REQUESTS)
        )
    )

    assert [r.status_code for r in responses] == [201] * CONCURRENT_REQUESTS
    assert len({r.json()["id"] for r in responses}) == CONCURRENT_REQUESTS
    created = await db_session.scalar(
        select(func.count()).select_from(User).where(User.email.like("concurrent-%"))
    )
    assert created == CONCURRENT_REQUESTS
    audited = await db_session.scalar(select(func.count()).select_from(AuditEntry))
    assert audited == CONCURRENT_REQUESTS


async def test_concurrent_duplicates_yield_one_201_and_409s(
    client: httpx.AsyncClient, db_session: AsyncSession, api_headers: dict[str, str]
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(
                "/users", json={"email": "race@example.com", "name": "Racer"}, headers=api_headers
            )
            for _ in range(10)
        )
    )

    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert await db_session.scalar(select(func.count()).select_from(User)) == 1
