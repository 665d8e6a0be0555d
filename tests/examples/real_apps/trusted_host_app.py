"""Shape: behind TrustedHostMiddleware (localhost only), every route under /v1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ.get("DATABASE_URL", "postgresql+asyncpg://x@db/x"))
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class ProjectIn(BaseModel):
    name: str


async def get_session() -> AsyncIterator[AsyncSession]:
    async with Session() as session:
        yield session
        await session.commit()


router = APIRouter(prefix="/v1")


@router.post("/projects", status_code=201)
async def create(
    project: ProjectIn, session: AsyncSession = Depends(get_session)
) -> dict[str, int]:
    row = Project(name=project.name)
    session.add(row)
    await session.flush()
    return {"id": row.id}


@router.get("/projects")
async def listing(
    request: Request, session: AsyncSession = Depends(get_session)
) -> dict[str, object]:
    names = (await session.scalars(select(Project.name).order_by(Project.id))).all()
    return {"host": request.headers["host"], "names": list(names)}


app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["localhost"])
app.include_router(router)
