"""The shop app plus routes that fail in the ways the failure report must explain."""

from __future__ import annotations

import shop
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from shop import Thing, get_session
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession


class Handled(LookupError):
    pass


def create_app() -> FastAPI:
    app = shop.create_app()

    @app.exception_handler(Handled)
    async def handled_as_500(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "something went wrong"}, status_code=500)

    @app.exception_handler(Exception)
    async def anything_as_500(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "unexpected"}, status_code=500)

    @app.middleware("http")
    async def swallow(request: Request, call_next):  # type: ignore[no-untyped-def]
        if not request.url.path.startswith("/report/swallowed"):
            return await call_next(request)
        try:
            return await call_next(request)
        except KeyError:
            return JSONResponse({"detail": "unavailable"}, status_code=503)

    @app.get("/report/handled")
    async def handled() -> None:
        raise Handled("lookup failed behind a 500 handler")

    @app.get("/report/any")
    async def anything() -> None:
        raise RuntimeError("caught by the Exception handler")

    @app.get("/report/swallowed")
    async def swallowed() -> None:
        raise KeyError("swallowed by middleware")

    @app.post("/report/login")
    async def login(
        request: Request, response: Response, session: AsyncSession = Depends(get_session)
    ) -> dict[str, str]:
        body = await request.json()
        await session.execute(
            text("SELECT :email AS email, :password AS password"),
            {"email": body["email"], "password": body["password"]},
        )
        response.set_cookie("session", "cookie-value-ZX81")
        return {"access_token": "token-value-QL42", "email": body["email"]}

    @app.get("/report/n-plus-one")
    async def n_plus_one(session: AsyncSession = Depends(get_session)) -> list[str]:
        ids = list(await session.scalars(select(Thing.id).order_by(Thing.id)))
        return [str(await session.scalar(select(Thing.name).where(Thing.id == i))) for i in ids]

    @app.get("/report/lazy")
    async def lazy(session: AsyncSession = Depends(get_session)) -> dict[str, str]:
        thing = (await session.scalars(select(Thing))).first()
        assert thing is not None
        session.expire(thing)
        return {"name": thing.name}  # lazy load outside await: MissingGreenlet

    @app.get("/report/big")
    async def big() -> dict[str, str]:
        return {"text": "x" * 5000 + "END-OF-BODY"}

    return app
