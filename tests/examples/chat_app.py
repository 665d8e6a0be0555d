"""The shop app plus WebSocket routes: an echo, and chat rooms backed by the database.

Each chat message is handled in a session of its own (a transaction is never held
open while the socket waits): it reads the room's members, stores the message and
answers with both.
"""

from __future__ import annotations

import shop
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column


class Member(shop.Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    room: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(50))


class ChatMessage(shop.Base):
    __tablename__ = "chat_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    room: Mapped[str] = mapped_column(String(50))
    author: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(String(500))


LEFT: list[str] = []
"""Rooms a client left (the handler saw the disconnect)."""


def create_app() -> FastAPI:
    app = shop.create_app()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])

    @app.websocket("/rooms/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        try:
            while True:
                incoming = await websocket.receive_json()
                if incoming.get("type") == "leave":
                    await websocket.close(code=4000, reason="left the room")
                    return
                async with shop.SessionLocal() as session:
                    members = await session.scalars(
                        select(Member.name).where(Member.room == room).order_by(Member.name)
                    )
                    names = list(members)
                    session.add(
                        ChatMessage(room=room, author=incoming["author"], text=incoming["text"])
                    )
                    await session.commit()
                await websocket.send_json(
                    {
                        "room": room,
                        "members": names,
                        "author": incoming["author"],
                        "text": incoming["text"],
                    }
                )
        except WebSocketDisconnect:
            LEFT.append(room)

    @app.websocket("/rooms/{room}/moderated")
    async def moderated(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        raise RuntimeError(f"moderation failed on {text!r}")

    @app.websocket("/private")
    async def private(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    return app
