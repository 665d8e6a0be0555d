"""The shop app plus a server-sent events feed of a user's notifications.

The feed reads the user's unread notifications, marks them delivered in its own
session, sends them, then keeps the connection open with keep-alive comments until
the client leaves; only a feed that ends on its own commits the deliveries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import shop
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import Boolean, String, select
from sqlalchemy.orm import Mapped, mapped_column


class Notification(shop.Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(String(200))
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)


FEEDS_CLOSED: list[str] = []
"""Users whose feed generator ran its ``finally`` (the tests read it)."""


def event(notification: Notification) -> str:
    payload = {"id": notification.id, "text": notification.text}
    return f"id: {notification.id}\nevent: notification\ndata: {json.dumps(payload)}\n\n"


async def feed(user: str, keepalive: float, limit: int | None, fail: bool) -> AsyncIterator[str]:
    async with shop.SessionLocal() as session:
        try:
            unread = await session.scalars(
                select(Notification)
                .where(Notification.user == user, Notification.delivered.is_(False))
                .order_by(Notification.id)
            )
            for notification in unread.all():
                notification.delivered = True
                await session.flush()
                yield event(notification)
                if fail:
                    raise RuntimeError(f"the feed of {user} broke")
            sent = 0
            while limit is None or sent < limit:
                await asyncio.sleep(keepalive)
                yield ": keep-alive\n\n"
                sent += 1
            await session.commit()
        finally:
            FEEDS_CLOSED.append(user)


def create_app() -> FastAPI:
    app = shop.create_app()

    @app.get("/users/{user}/events")
    async def events(
        user: str, keepalive: float = 15.0, limit: int | None = None, fail: bool = False
    ) -> StreamingResponse:
        return StreamingResponse(
            feed(user, keepalive, limit, fail),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    return app
