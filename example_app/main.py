"""Application factory and lifespan.

Use ``uvicorn --factory example_app.main:create_app``; there is intentionally
no module-level ``app`` so importing this module never reads configuration.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from example_app.db import SessionLocal, build_engine
from example_app.errors import install_error_handlers
from example_app.ratelimit import FixedWindowRateLimiter
from example_app.routers import health, items, reports, users, web
from example_app.settings import Settings


class LifespanState(TypedDict):
    """Values exposed to every request as ``request.state.<key>``."""

    engine: AsyncEngine


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
    """Own the engine for the app's lifetime and bind the session factory to it."""
    settings: Settings = app.state.settings
    engine = build_engine(settings.database_url)
    try:
        # Fail at startup, not on the first request, if the database is unreachable.
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        SessionLocal.configure(bind=engine)
        yield {"engine": engine}
    finally:
        # Only unbind if nobody rebound the factory meanwhile (a test harness
        # may have pointed it at its own connection).
        if SessionLocal.kw.get("bind") is engine:
            SessionLocal.configure(bind=None)
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build a new application; reads settings from the environment unless given."""
    settings = settings if settings is not None else Settings.from_env()

    app = FastAPI(title="Example shop API", version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    # One limiter per app instance so separate apps (e.g. per test) never share counters.
    app.state.rate_limiter = FixedWindowRateLimiter(settings.rate_limit_per_minute)
    # Signs the browser pages' session cookie; per process, so a restart signs users out.
    app.state.session_secret = secrets.token_bytes(32)

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(users.router)
    app.include_router(items.router)
    app.include_router(reports.router)
    app.include_router(web.router)
    return app
