"""A small FastAPI app the harness's own tests run against (copied into each pytester dir)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from sqlalchemy import String, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BUILDS = {"count": 0}


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Audit(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(50))


SessionLocal = async_sessionmaker(expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


async def get_maker() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    yield SessionLocal


async def write_audit(action: str) -> None:
    async with SessionLocal() as session:
        session.add(Audit(action=action))
        await session.commit()


def create_app() -> FastAPI:
    BUILDS["count"] += 1

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        engine = create_async_engine(os.environ["DATABASE_URL"])
        SessionLocal.configure(bind=engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        yield {"engine": engine, "greeting": "hello from lifespan"}
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/things", status_code=201)
    async def create_thing(
        name: str, tasks: BackgroundTasks, session: AsyncSession = Depends(get_session)
    ) -> dict[str, object]:
        thing = Thing(name=name)
        session.add(thing)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            raise HTTPException(409, "name taken") from None
        # A read after the commit leaves this session in a new transaction while the
        # background task below runs (as an app with expire_on_commit=True would).
        await session.refresh(thing)
        tasks.add_task(write_audit, f"created {name}")
        return {"id": thing.id, "name": name}

    @app.get("/things")
    async def list_things(session: AsyncSession = Depends(get_session)) -> list[str]:
        return list(await session.scalars(select(Thing.name).order_by(Thing.id)))

    @app.get("/count-via-maker")
    async def count_via_maker(
        maker: async_sessionmaker[AsyncSession] = Depends(get_maker),
    ) -> int:
        async with maker() as session:
            return int(await session.scalar(select(func.count()).select_from(Thing)) or 0)

    @app.post("/things-via-maker", status_code=201)
    async def create_via_maker(
        name: str, maker: async_sessionmaker[AsyncSession] = Depends(get_maker)
    ) -> dict[str, str]:
        async with maker() as session:
            session.add(Thing(name=name))
            await session.commit()
        return {"name": name}

    @app.post("/escape", status_code=201)
    async def escape(request: Request) -> dict[str, str]:
        # Writes through the app's own engine, bypassing the session dependency.
        engine = request.state.engine
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO things (name) VALUES ('escaped')"))
        return {"name": "escaped"}

    @app.get("/greeting")
    async def greeting(request: Request) -> dict[str, object]:
        seen = getattr(request.state, "scribble", None)
        request.state.scribble = "written by an earlier request"
        return {"greeting": request.state.greeting, "scribble": seen}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("kaboom from the server")

    return app
