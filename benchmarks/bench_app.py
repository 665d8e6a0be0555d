"""The app every benchmark suite runs against: a FastAPI app with one real table and
BENCH_EXTRA_TABLES more (to show what schema size costs, and to give TRUNCATE and
drop/create the work they would have in a real project)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from sqlalchemy import Column, ForeignKey, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


for number in range(int(os.environ.get("BENCH_EXTRA_TABLES", "9"))):
    Table(
        f"extra_{number}",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("thing_id", ForeignKey("things.id")),
        Column("label", String(40), index=True),
    )

SessionLocal = async_sessionmaker(expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(os.environ["DATABASE_URL"])
        SessionLocal.configure(bind=engine)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/things", status_code=201)
    async def create(name: str, session: AsyncSession = Depends(get_session)) -> dict[str, str]:
        session.add(Thing(name=name))
        await session.commit()
        return {"name": name}

    @app.get("/things")
    async def list_things(session: AsyncSession = Depends(get_session)) -> list[str]:
        return [thing.name for thing in await session.scalars(select(Thing).order_by(Thing.id))]

    return app
