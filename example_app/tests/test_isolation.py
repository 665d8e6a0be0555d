"""Nothing a test does is visible to the next one.

Tests here are numbered because they are meant to run in file order: the
second of each pair checks that the first left no trace.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from example_app.auth import require_api_key
from example_app.models import AuditEntry, User
from example_app.tests.conftest import MakeUser

PROBE_EMAIL = "isolation-probe@example.com"
SEEDED_EMAIL = "isolation-seed@example.com"


async def test_isolation_1_writes(
    client: httpx.AsyncClient, make_user: MakeUser, api_headers: dict[str, str]
) -> None:
    await make_user(email=SEEDED_EMAIL)
    response = await client.post(
        "/users", json={"email": PROBE_EMAIL, "name": "Probe"}, headers=api_headers
    )
    assert response.status_code == 201
    assert (await client.get("/users")).json()["total"] == 2


async def test_isolation_2_sees_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, db_connection: AsyncConnection
) -> None:
    emails = [u["email"] for u in (await client.get("/users")).json()["items"]]
    assert PROBE_EMAIL not in emails
    assert SEEDED_EMAIL not in emails
    assert await db_session.scalar(select(User).where(User.email == PROBE_EMAIL)) is None
    # The background audit write from the previous test was rolled back too.
    assert await db_session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    assert (await db_connection.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0


async def test_dependency_override_1_applies(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.dependency_overrides[require_api_key] = lambda: "override"

    response = await client.post("/users", json={"email": "override@example.com", "name": "O"})

    assert response.status_code == 201


async def test_dependency_override_2_does_not_leak(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert require_api_key not in app.dependency_overrides
    response = await client.post("/users", json={"email": "override@example.com", "name": "O"})
    assert response.status_code == 401
