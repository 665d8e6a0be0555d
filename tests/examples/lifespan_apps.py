"""App variants for tests of how the harness builds apps and runs their lifespan.

Copied into a pytester dir next to shop.py; the apps reuse shop's models, session
dependency and module-level sessionmaker, so shop's conftest settings fit them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import shop
from fastapi import Depends, FastAPI, Request
from shop import SessionLocal, Thing, get_session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine


def _with_things_route(app: FastAPI) -> FastAPI:
    @app.get("/things")
    async def list_things(session: AsyncSession = Depends(get_session)) -> list[str]:
        return list(await session.scalars(select(Thing.name).order_by(Thing.id)))

    return app


def create_loop_app() -> FastAPI:
    """An app whose lifespan and /loop route report the event loop they run on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        engine = create_async_engine(os.environ["DATABASE_URL"])
        SessionLocal.configure(bind=engine)
        yield {"lifespan_loop": id(asyncio.get_running_loop())}
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/loop")
    async def loop(request: Request) -> dict[str, int]:
        return {
            "lifespan": request.state.lifespan_loop,
            "request": id(asyncio.get_running_loop()),
        }

    return _with_things_route(app)


async def create_app_async() -> FastAPI:
    """An async factory: the shop app, built after an await."""
    await asyncio.sleep(0)
    return shop.create_app()


def create_failing_app() -> FastAPI:
    """An app whose lifespan startup raises."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("the cache server is on fire")
        yield  # pragma: no cover

    return _with_things_route(FastAPI(lifespan=lifespan))


def create_hanging_app() -> FastAPI:
    """An app whose lifespan startup never finishes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.Event().wait()
        yield  # pragma: no cover

    return _with_things_route(FastAPI(lifespan=lifespan))


def not_an_app_factory() -> dict[str, str]:
    """A callable that returns something that is not an app."""
    return {"not": "an app"}
