"""The shop app behind a middleware that keeps a session open across the route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import shop
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from starlette.middleware.base import BaseHTTPMiddleware


async def audit_around(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    if request.method != "POST":
        return await call_next(request)
    async with shop.SessionLocal() as session:
        # Reading first opens this session's transaction; it stays open across the route.
        await session.scalar(select(func.count()).select_from(shop.Audit))
        response = await call_next(request)
        session.add(shop.Audit(action="seen"))
        await session.commit()
    return response


def create_app() -> FastAPI:
    app = shop.create_app()
    app.add_middleware(BaseHTTPMiddleware, dispatch=audit_around)
    return app
