"""Readiness endpoint: checks the database and reports what the lifespan set up."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from example_app.errors import ServiceUnavailable
from example_app.routers.deps import SessionDep
from example_app.schemas import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request, session: SessionDep) -> HealthStatus:
    # The check goes through the session dependency like every other route, so it
    # exercises the same path requests use; the engine from lifespan state is only
    # read for its dialect name.
    engine: AsyncEngine = request.state.engine
    try:
        await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable(f"Database unreachable: {type(exc).__name__}") from exc
    return HealthStatus(status="ok", database=engine.dialect.name)
