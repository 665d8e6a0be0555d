"""Shape: the lifespan opens a raw asyncpg pool beside the engine, and a route uses it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI, Request
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DSN = os.environ.get("DSN", "postgresql://stats:stats@warehouse:5432/stats")


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.engine = create_async_engine(DSN.replace("postgresql://", "postgresql+asyncpg://"))
    app.state.pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2)
    await app.state.pool.fetchval("SELECT 1")  # outside tests: allowed
    yield
    await app.state.pool.close()
    await app.state.engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/events/count")
async def count_via_engine(request: Request) -> dict[str, int]:
    async with AsyncSession(request.app.state.engine) as session:
        return {"count": await session.scalar(select(func.count()).select_from(Event)) or 0}


@app.get("/events/raw-count")
async def count_via_raw_pool(request: Request) -> dict[str, int]:
    return {"count": await request.app.state.pool.fetchval("SELECT count(*) FROM events")}
