"""Shape: the dependency yields an async_sessionmaker; use-case classes open their own
transactions with ``async with maker.begin()``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ.get("DB_DSN", "postgresql+asyncpg://shop@db/shop"))
session_factory = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(80), unique=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    total: Mapped[int]


async def get_session_factory() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    yield session_factory


class PlaceOrder:
    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker

    async def __call__(self, email: str, total: int) -> int:
        async with self.maker.begin() as session:
            customer = await session.scalar(select(Customer).where(Customer.email == email))
            if customer is None:
                customer = Customer(email=email)
                session.add(customer)
                await session.flush()
            order = Order(customer_id=customer.id, total=total)
            session.add(order)
            await session.flush()
            return order.id


class RegisterCustomer:
    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker

    async def __call__(self, email: str) -> None:
        async with self.maker.begin() as session:
            session.add(Customer(email=email))


app = FastAPI()


@app.post("/orders", status_code=201)
async def place_order(
    email: str, total: int, maker: async_sessionmaker[AsyncSession] = Depends(get_session_factory)
) -> dict[str, int]:
    return {"id": await PlaceOrder(maker)(email, total)}


@app.post("/customers", status_code=201)
async def register(
    email: str, maker: async_sessionmaker[AsyncSession] = Depends(get_session_factory)
) -> dict[str, str]:
    try:
        await RegisterCustomer(maker)(email)
    except IntegrityError:
        raise HTTPException(409, "customer exists") from None
    return {"email": email}
