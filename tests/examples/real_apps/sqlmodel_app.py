"""Shape: SQLModel tables and SQLModel's AsyncSession, ``exec()`` in the routes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    age: int | None = None


engine = create_async_engine(os.environ.get("DATABASE_URL", "postgresql+asyncpg://h@db/heroes"))


async def get_session() -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


app = FastAPI()


@app.post("/heroes", status_code=201)
async def create_hero(hero: Hero, session: AsyncSession = Depends(get_session)) -> Hero:
    session.add(hero)
    await session.commit()
    await session.refresh(hero)
    return hero


@app.get("/heroes")
async def list_heroes(session: AsyncSession = Depends(get_session)) -> list[Hero]:
    return list((await session.exec(select(Hero).order_by(Hero.id))).all())
