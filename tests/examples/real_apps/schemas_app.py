"""Shape: models in two PostgreSQL schemas, a citext column, a function setup_sql makes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.dialects.postgresql import CITEXT
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ.get("DATABASE_URL", "postgresql+asyncpg://x@db/x"))
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = {"schema": "crm"}  # noqa: RUF012 - SQLAlchemy reads it as is
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(CITEXT, unique=True)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = {"schema": "billing"}  # noqa: RUF012
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("crm.customers.id"))
    number: Mapped[str] = mapped_column(String(20))


async def get_session() -> AsyncIterator[AsyncSession]:
    async with Session() as session:
        yield session


app = FastAPI()


@app.get("/customers/{email}/invoices")
async def invoices(email: str, session: AsyncSession = Depends(get_session)) -> list[str]:
    query = (
        select(func.app_label(Invoice.number))
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Customer.email == email)
        .order_by(Invoice.id)
    )
    return list((await session.scalars(query)).all())
