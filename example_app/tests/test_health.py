"""Health endpoint: database check through the session dependency, lifespan state."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import URL, make_url


async def test_health_checks_database_and_reads_lifespan_state(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "postgresql"}


async def test_app_was_built_against_the_test_database(app: FastAPI, e2e_database_url: URL) -> None:
    # The harness sets DATABASE_URL before calling the factory, so the app's
    # own engine points at the test database.
    assert make_url(app.state.settings.database_url).database == e2e_database_url.database
