"""Harness configuration and small shared fixtures for the example app's tests.

The plugin (auto-loaded via its entry point) provides ``client``, ``db_session``,
``db_connection``, ``app`` and ``e2e_database_url``; everything a test writes is
rolled back afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.auth import API_KEY_HEADER
from example_app.models import Item, User
from fastapi_e2e import E2EConfig

MakeUser = Callable[..., Awaitable[User]]
MakeItem = Callable[..., Awaitable[Item]]


@pytest.fixture(scope="session")
def e2e_config() -> E2EConfig:
    # The app's settings require DATABASE_URL; the harness sets it to the test
    # database. Its engines, sessionmaker and dependency need no configuration.
    return E2EConfig(
        app="example_app.main:create_app",
        alembic_ini="example_app/alembic.ini",
        database_url_env="DATABASE_URL",
    )


@pytest.fixture
def api_headers(app: FastAPI) -> dict[str, str]:
    # Derived from the app's settings so tests pass whatever API_KEYS is set to.
    key = sorted(app.state.settings.api_keys)[0]
    return {API_KEY_HEADER: key}


@pytest.fixture(autouse=True)
def _fresh_rate_limiter(app: FastAPI) -> None:
    # Counters must not carry over if the harness ever reuses an app across tests.
    app.state.rate_limiter.reset()


@pytest.fixture
def make_user(db_session: AsyncSession) -> MakeUser:
    """Seed users directly in the test transaction (flushed, so the app sees them)."""
    counter = itertools.count(1)

    async def make(email: str | None = None, name: str = "Seeded User") -> User:
        user = User(email=email or f"seeded-{next(counter)}@example.com", name=name)
        db_session.add(user)
        await db_session.flush()
        return user

    return make


@pytest.fixture
def make_item(db_session: AsyncSession) -> MakeItem:
    """Seed an item for ``owner`` in the test transaction."""

    async def make(owner: User, title: str = "Seeded item", price_cents: int = 100) -> Item:
        item = Item(owner_id=owner.id, title=title, price_cents=price_cents)
        db_session.add(item)
        await db_session.flush()
        return item

    return make
