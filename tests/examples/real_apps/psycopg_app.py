"""Shape: psycopg 3's async driver. The lookup passes the id as text, which psycopg
sends untyped (the server casts it) and asyncpg would refuse for an integer column."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(
    os.environ.get("DATABASE_URL", "postgresql+psycopg://app:secret@postgres:5432/app")
)
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


async def get_session() -> AsyncIterator[AsyncSession]:
    async with Session() as session, session.begin():
        yield session


app = FastAPI()


@app.post("/items", status_code=201)
async def add_item(name: str, session: AsyncSession = Depends(get_session)) -> dict[str, int]:
    item = Item(name=name)
    session.add(item)
    await session.flush()
    return {"id": item.id}


@app.post("/items/checked", status_code=201)
async def add_checked(name: str, session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    session.add(Item(name=name))
    await session.flush()
    connection = await session.connection()
    # psycopg's isolation check rolls back a connection it finds idle.
    return {"isolation": await connection.get_isolation_level()}


@app.get("/items/{item_id}")
async def read_item(item_id: str, session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    # item_id stays a str: psycopg lets the server cast it, as it does in production.
    name = await session.scalar(text("SELECT name FROM items WHERE id = :id"), {"id": item_id})
    if name is None:
        raise HTTPException(404)
    return {"name": name}


@app.get("/driver")
async def driver(session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    connection = await session.connection()
    return {"driver": connection.dialect.driver}
