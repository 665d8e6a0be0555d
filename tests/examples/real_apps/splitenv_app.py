"""Shape: settings from split variables with a nested delimiter (DATABASE__HOSTNAME,
DATABASE__PORT, DATABASE__USERNAME, DATABASE__PASSWORD, DATABASE__DB) and a .env file,
read through an lru_cache'd get_settings() when the module is imported. The password
has no default, the host must be a host name (not a socket directory) and the port a
number, as settings classes validate them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import lru_cache

from fastapi import Depends, FastAPI
from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class DatabaseSettings(BaseModel):
    hostname: str
    port: int = 5432
    username: str
    password: SecretStr
    db: str

    @field_validator("hostname")
    @classmethod
    def no_socket_paths(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("must be a host name, not a socket directory")
        return value

    @property
    def url(self) -> str:
        secret = self.password.get_secret_value()
        return (
            f"postgresql+asyncpg://{self.username}:{secret}@{self.hostname}:{self.port}/{self.db}"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="__", env_file=".env")

    database: DatabaseSettings


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]


engine = create_async_engine(get_settings().database.url, pool_size=5)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Article(Base):
    __tablename__ = "articles"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)


class ArticleIn(BaseModel):
    title: str


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
        await session.commit()


app = FastAPI()


@app.post("/articles", status_code=201)
async def create(article: ArticleIn, db: AsyncSession = Depends(get_db)) -> dict[str, str]:
    db.add(Article(title=article.title))
    await db.flush()
    return {"title": article.title}


@app.get("/articles")
async def listing(db: AsyncSession = Depends(get_db)) -> list[str]:
    return list((await db.scalars(select(Article.title).order_by(Article.id))).all())
