"""Async test styles the harness supports besides unmarked ``async def`` tests."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import User


@pytest.mark.anyio
async def test_anyio_marked_test_works(
    client: httpx.AsyncClient, db_session: AsyncSession, api_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/users", json={"email": "anyio@example.com", "name": "AnyIO"}, headers=api_headers
    )

    assert response.status_code == 201
    name = await db_session.scalar(select(User.name).where(User.email == "anyio@example.com"))
    assert name == "AnyIO"


@pytest.mark.asyncio
async def test_asyncio_marked_test_works(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).status_code == 200
