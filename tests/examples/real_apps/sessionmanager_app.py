"""Shape: an app factory and a global session-manager object whose engine is made in
the lifespan (from DATABASE_URL, unreachable here) and disposed at shutdown."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)


class DatabaseSessionManager:
    def __init__(self) -> None:
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None

    def init(self, url: str) -> None:
        self._engine = create_async_engine(url)
        self._sessionmaker = async_sessionmaker(self._engine, autocommit=False)

    async def close(self) -> None:
        if self._engine is None:
            raise RuntimeError("DatabaseSessionManager is not initialized")
        await self._engine.dispose()
        print("sessionmanager: engine disposed")
        self._engine = None
        self._sessionmaker = None

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("DatabaseSessionManager is not initialized")
        session = self._sessionmaker()
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        finally:
            await session.close()


sessionmanager = DatabaseSessionManager()


async def get_db_session() -> AsyncIterator[AsyncSession]:
    async with sessionmanager.session() as session:
        yield session


def create_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sessionmanager.init(os.environ.get("DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/x"))
        yield
        await sessionmanager.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/tags", status_code=201)
    async def create_tag(name: str, db: AsyncSession = Depends(get_db_session)) -> dict[str, str]:
        db.add(Tag(name=name))
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            raise HTTPException(409, "tag exists") from None
        return {"name": name}

    @app.get("/tags")
    async def list_tags(db: AsyncSession = Depends(get_db_session)) -> list[str]:
        return list((await db.scalars(select(Tag.name).order_by(Tag.id))).all())

    return app
