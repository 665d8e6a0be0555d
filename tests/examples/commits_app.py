"""An app whose features need real commits: locks, NOTIFY, a pooled engine (commits-mode tests)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from sqlalchemy import Boolean, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    taken: Mapped[bool] = mapped_column(Boolean, default=False)


# A pooled engine made at import from the app's settings, as real apps do.
engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=3, max_overflow=2)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
        await session.commit()


app = FastAPI()


@app.post("/jobs", status_code=201)
async def add_job(name: str, session: AsyncSession = Depends(get_session)) -> dict[str, object]:
    job = Job(name=name)
    session.add(job)
    await session.flush()
    return {"id": job.id}


@app.get("/jobs/count")
async def count_jobs(session: AsyncSession = Depends(get_session)) -> int:
    return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


@app.get("/database")
async def database(session: AsyncSession = Depends(get_session)) -> str:
    return str(await session.scalar(text("SELECT current_database()")))


@app.post("/claim")
async def claim(session: AsyncSession = Depends(get_session)) -> int | None:
    row = await session.scalar(
        select(Job)
        .where(Job.taken.is_(False))
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if row is None:
        return None
    # Hold the row lock while the other request looks (not marked taken: only the lock
    # keeps the other request off this row, so on one shared connection both get it).
    await asyncio.sleep(0.3)
    return row.id


@app.post("/notify")
async def notify(message: str, session: AsyncSession = Depends(get_session)) -> None:
    await session.execute(text("SELECT pg_notify('events', :m)"), {"m": message})


@app.post("/lock")
async def lock() -> bool:
    # Session-level: held by the pooled connection after the request returns it.
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(42)")))


@app.get("/connection")
async def connection(session: AsyncSession = Depends(get_session)) -> dict[str, float]:
    """Which server process served the request, and since when (a diagnostics route)."""
    row = (
        await session.execute(
            text(
                "SELECT pid, extract(epoch FROM backend_start) AS started "
                "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
        )
    ).one()
    return {"pid": row.pid, "started": float(row.started)}
