"""Shape: settings from split POSTGRES_* variables, engine at import, Alembic migrations
whose env.py builds its own URL (the shape of the async Alembic template)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from pydantic_settings import BaseSettings
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Settings(BaseSettings):
    POSTGRES_HOST: str = "db"
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "app"
    POSTGRES_PASSWORD: str = "app"
    POSTGRES_DB: str = "notes"

    @property
    def database_url(self) -> str:
        return (
            f"postgresql+asyncpg://{self.POSTGRES_USER}:{self.POSTGRES_PASSWORD}"
            f"@{self.POSTGRES_HOST}:{self.POSTGRES_PORT}/{self.POSTGRES_DB}"
        )


settings = Settings()
engine = create_async_engine(settings.database_url)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200))


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
        await session.commit()


app = FastAPI()


@app.post("/notes", status_code=201)
async def add(body: str, session: AsyncSession = Depends(get_session)) -> dict[str, str]:
    session.add(Note(body=body))
    return {"body": body}


@app.get("/notes")
async def listing(session: AsyncSession = Depends(get_session)) -> list[str]:
    return list((await session.scalars(select(Note.body).order_by(Note.id))).all())
