"""A product catalogue shaped like a real project: categories, products with Decimal
prices, an enum status, JSON attributes, dates; the engine made in the lifespan from
DATABASE_URL, a session dependency, and a service that commits."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Numeric,
    String,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Status(enum.Enum):
    draft = "draft"
    active = "active"
    retired = "retired"


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    products: Mapped[list[Product]] = relationship(back_populates="category")


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[Status] = mapped_column(Enum(Status, name="product_status"))
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    launched_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    category: Mapped[Category] = relationship(back_populates="products")


SessionLocal = async_sessionmaker(expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


class PriceChange(BaseModel):
    price: decimal.Decimal


def _product(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "category_id": product.category_id,
        "price": str(product.price),
        "status": product.status.value,
        "in_stock": product.in_stock,
        "attributes": product.attributes,
        "launched_on": product.launched_on.isoformat() if product.launched_on else None,
    }


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(os.environ["DATABASE_URL"], pool_size=5)
        SessionLocal.configure(bind=engine)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/products")
    async def list_products(
        category: str | None = None, session: AsyncSession = Depends(get_session)
    ) -> list[dict[str, Any]]:
        query = select(Product).order_by(Product.id)
        if category is not None:
            query = query.join(Category).where(Category.slug == category)
        return [_product(p) for p in await session.scalars(query)]

    @app.get("/products/count")
    async def count_products(session: AsyncSession = Depends(get_session)) -> dict[str, int]:
        total = await session.scalar(select(func.count()).select_from(Product))
        return {"count": total or 0}

    @app.get("/products/{sku}")
    async def get_product(sku: str, session: AsyncSession = Depends(get_session)) -> Any:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            raise HTTPException(404, f"no product {sku}")
        return _product(product)

    @app.put("/products/{sku}/price")
    async def change_price(
        sku: str, change: PriceChange, session: AsyncSession = Depends(get_session)
    ) -> Any:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            raise HTTPException(404, f"no product {sku}")
        product.price = change.price
        await session.commit()
        return _product(product)

    @app.delete("/products/{sku}", status_code=204)
    async def retire(sku: str, session: AsyncSession = Depends(get_session)) -> None:
        product = await session.scalar(select(Product).where(Product.sku == sku))
        if product is not None:
            await session.delete(product)
            await session.commit()

    @app.get("/categories")
    async def categories(session: AsyncSession = Depends(get_session)) -> list[str]:
        return list(await session.scalars(select(Category.slug).order_by(Category.slug)))

    return app
