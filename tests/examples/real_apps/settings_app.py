"""Shape: settings from several env vars, engine and sessionmaker built at import,
a dependency that commits after its yield, routes that only flush, and a
SQLAlchemyError handler answering 500. Its URL names a docker host, "db"."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic_settings import BaseSettings
from sqlalchemy import String, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Settings(BaseSettings):
    POSTGRES_SERVER: str = "db"
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "app"
    POSTGRES_PASSWORD: str = "changethis"
    POSTGRES_DB: str = "app"

    @property
    def database_uri(self) -> str:
        return (
            f"postgresql+asyncpg://{self.POSTGRES_USER}:{self.POSTGRES_PASSWORD}"
            f"@{self.POSTGRES_SERVER}:{self.POSTGRES_PORT}/{self.POSTGRES_DB}"
        )


settings = Settings()
engine = create_async_engine(settings.database_uri, pool_pre_ping=True)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        try:
            yield session
            await session.commit()
        except Exception:
            await session.rollback()
            raise


app = FastAPI()


@app.exception_handler(SQLAlchemyError)
async def database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    return JSONResponse({"detail": "database error"}, status_code=500)


@app.post("/notes", status_code=201)
async def create_note(title: str, db: AsyncSession = Depends(get_db)) -> dict[str, object]:
    note = Note(title=title)
    db.add(note)
    await db.flush()
    return {"id": note.id, "title": note.title}


@app.get("/notes/{note_id}")
async def read_note(note_id: int, db: AsyncSession = Depends(get_db)) -> dict[str, object]:
    note = await db.get(Note, note_id)
    if note is None:
        raise HTTPException(404)
    return {"id": note.id, "title": note.title}


@app.get("/notes")
async def list_notes(db: AsyncSession = Depends(get_db)) -> list[str]:
    return list((await db.scalars(select(Note.title).order_by(Note.id))).all())
