"""Shape: the most common one: an engine at module level from DATABASE_URL, which the
harness sets (database_url_env) before it imports the app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from sqlalchemy import String, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ["DATABASE_URL"])
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


app = FastAPI()


@app.post("/items", status_code=201)
async def add(name: str, session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    session.add(Item(name=name))
    await session.commit()
    return {"name": name}


@app.get("/items")
async def listing(session: AsyncSession = Depends(get_session)) -> list[str]:
    return list((await session.scalars(select(Item.name).order_by(Item.id))).all())


@app.get("/slow")
async def slow(session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    await session.execute(text("SELECT pg_sleep(2)"))
    return {}


@app.get("/report")
async def report(session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    # The app's own deadline on a slow query, with a fallback answer.
    try:
        await asyncio.wait_for(session.execute(text("SELECT pg_sleep(1)")), 0.1)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
        return {"report": "unavailable"}
    return {"report": "ready"}


@app.post("/items/try")
async def add_ignoring_duplicates(name: str) -> dict[str, str]:
    # Swallows a failed statement, then commits: production's COMMIT rolls back quietly.
    async with engine.connect() as conn:
        try:  # noqa: SIM105 - written the way apps write it
            await conn.execute(text("INSERT INTO items (name) VALUES (:n)"), {"n": name})
        except IntegrityError:
            pass
        await conn.commit()
    return {"name": name}
