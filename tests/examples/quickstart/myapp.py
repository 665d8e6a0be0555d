from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Your real URL: the harness points this engine at its test database.
engine = create_async_engine("postgresql+asyncpg://app:secret@db:5432/app")
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)


class UserIn(BaseModel):
    email: str


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session
        await session.commit()  # after the response: kept for the rest of the test


app = FastAPI()


@app.post("/users", status_code=201)
async def create_user(user: UserIn, session: AsyncSession = Depends(get_session)) -> dict:
    session.add(User(email=user.email))
    await session.flush()
    return {"email": user.email}
