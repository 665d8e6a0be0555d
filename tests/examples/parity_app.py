"""An app whose bugs only production's COMMIT and roles would show: a deferred foreign
key, a tenant set with SET LOCAL, and a row-level security policy on that tenant."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy import DDL, ForeignKey, String, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(
    os.environ.get("DATABASE_URL", "postgresql+asyncpg://app:secret@db:5432/app"),
    connect_args={"server_settings": {"application_name": "parity-app"}},
)
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), default="p")


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("parents.id", deferrable=True, initially="DEFERRED")
    )


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int]
    body: Mapped[str] = mapped_column(String(40))


event.listen(Note.__table__, "after_create", DDL("ALTER TABLE notes ENABLE ROW LEVEL SECURITY"))
event.listen(
    Note.__table__,
    "after_create",
    DDL(
        "CREATE POLICY tenant_notes ON notes "
        "USING (tenant_id = nullif(current_setting('app.tenant', true), '')::int)"
    ),
)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with Session() as session:
        yield session


async def add_orphan(session: AsyncSession) -> dict[str, Any]:
    """Add a child of a parent that does not exist and commit: what the commit raised."""
    session.add(Child(parent_id=999))
    await session.flush()  # passes: the foreign key is only checked at COMMIT
    try:
        await session.commit()
    except Exception as error:
        await session.rollback()
        orig = getattr(error, "orig", None)
        return {
            "type": f"{type(error).__module__}.{type(error).__qualname__}",
            "orig": f"{type(orig).__module__}.{type(orig).__qualname__}",
            "cause": type(orig.__cause__).__name__ if orig is not None else None,
            "sqlstate": getattr(orig, "sqlstate", None),
        }
    return {"type": None}


async def set_tenant(session: AsyncSession, tenant: int) -> None:
    await session.execute(select(func.set_config("app.tenant", str(tenant), True)))


app = FastAPI()


@app.post("/orphans")
async def post_orphan(session: AsyncSession = Depends(get_session)) -> dict[str, Any]:
    return await add_orphan(session)


@app.post("/families", status_code=201)
async def post_family(session: AsyncSession = Depends(get_session)) -> dict[str, int]:
    # The child first: valid at COMMIT, since the parent exists by then.
    session.add(Child(parent_id=500))
    await session.flush()
    session.add(Parent(id=500))
    await session.commit()
    return {"parent": 500}


@app.post("/tenants/{tenant}/notes", status_code=201)
async def post_note(
    tenant: int, body: str, session: AsyncSession = Depends(get_session)
) -> dict[str, str]:
    await set_tenant(session, tenant)
    session.add(Note(tenant_id=tenant, body=body))
    await session.commit()
    return {"body": body}


@app.get("/tenants/{tenant}/notes")
async def list_notes(tenant: int, session: AsyncSession = Depends(get_session)) -> list[str]:
    await set_tenant(session, tenant)
    return list(await session.scalars(select(Note.body).order_by(Note.id)))


@app.get("/tenant")
async def current_tenant(session: AsyncSession = Depends(get_session)) -> dict[str, Any]:
    value = await session.scalar(text("SELECT current_setting('app.tenant', true)"))
    return {"tenant": value or None}


@app.get("/parents")
async def list_parents(session: AsyncSession = Depends(get_session)) -> list[str]:
    return list(await session.scalars(select(Parent.name).order_by(Parent.id)))
