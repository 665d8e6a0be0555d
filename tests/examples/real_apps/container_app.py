"""Shape: no session in Depends. A small DI container hands repositories an engine it
makes on first use; each repository opens ``AsyncSession(engine)`` and commits."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(40), unique=True)


class Singleton:
    """A provider that builds its object once, on first call (like DI libraries do)."""

    def __init__(self, factory: Any, *args: Any) -> None:
        self.factory, self.args, self.instance = factory, args, None

    def __call__(self) -> Any:
        if self.instance is None:
            self.instance = self.factory(*(arg() if callable(arg) else arg for arg in self.args))
        return self.instance


class AccountRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, login: str) -> int:
        async with AsyncSession(self.engine) as session:
            account = Account(login=login)
            session.add(account)
            await session.flush()
            account_id = account.id  # commit() expires it, and async cannot lazy-load
            await session.commit()
            return account_id

    async def logins(self) -> list[str]:
        async with AsyncSession(self.engine) as session:
            return list((await session.scalars(select(Account.login).order_by(Account.id))).all())


class Container:
    url = Singleton(lambda: os.environ.get("ACCOUNTS_DB", "postgresql+asyncpg://a:b@pg:5432/acc"))
    engine = Singleton(lambda url: create_async_engine(url, pool_size=1, max_overflow=0), url)
    accounts = Singleton(AccountRepository, engine)


container = Container()
app = FastAPI()


@app.post("/accounts", status_code=201)
async def open_account(login: str) -> dict[str, int]:
    try:
        return {"id": await container.accounts().add(login)}
    except IntegrityError:
        raise HTTPException(409, "login taken") from None


@app.get("/accounts")
async def list_accounts() -> list[str]:
    return await container.accounts().logins()
