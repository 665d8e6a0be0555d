"""WebSockets to the app in-process, in httpx-ws's convention, on the test's loop.

httpx-ws (``async with aconnect_ws("/ws", client) as ws``) sends the upgrade request
through the client and expects a 101 response whose ``network_stream`` extension
carries WebSocket frames both ways. Here that stream is the app's end: wsproto turns
the client's frames into ASGI ``websocket.*`` messages for the app's task and the
app's messages into frames, as a server does; refusals (a close before accepting, a
denial response, an exception) are the HTTP responses a server would send.

Why not httpx-ws's own ``ASGIWebSocketTransport``: it runs the app in a task group
the transport must be entered for (the harness's client is never entered, and
fixtures set up and tear down in different tasks), keeps each new socket's scope on
the transport (two sockets opened at once may swap scopes), and answers an exception
before the accept with a close rather than the 500 a server sends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import httpx
from starlette.types import Message

from fastapi_e2e.client.channel import Channel
from fastapi_e2e.client.transport import (
    DISCONNECT_GRACE,
    StreamingASGITransport,
    base_scope,
    read_timeout,
    run_app,
)
from fastapi_e2e.errors import NO_WSPROTO, WEBSOCKET_NOT_ACCEPTED, E2EError

try:
    import wsproto
    from wsproto import events as ws
    from wsproto.connection import ConnectionState
except ImportError:  # pragma: no cover - the websockets extra is missing
    wsproto = None  # type: ignore[assignment]

INTERNAL_ERROR = 1011
"""The close code servers send when the app raised (RFC 6455, 7.4.1)."""


class ClientDisconnected(OSError):
    """The app sent on a WebSocket the client had closed (Starlette reads an OSError
    from ``send`` as a disconnect, as with servers)."""


async def open_websocket(
    transport: StreamingASGITransport, request: httpx.Request
) -> httpx.Response:
    """Run the app's WebSocket route for ``request`` (an upgrade); the 101 response
    carries the socket, any other is the app's (or a server's) refusal."""
    if wsproto is None:  # pragma: no cover
        raise E2EError(NO_WSPROTO)
    socket = AppWebSocket(transport, request)
    return await socket.handshake()


class AppWebSocket(httpcore.AsyncNetworkStream):
    """The server's end of one WebSocket: the app's task, and frames each way."""

    def __init__(self, transport: StreamingASGITransport, request: httpx.Request) -> None:
        self.transport = transport
        self.request = request
        self.loop = asyncio.get_running_loop()
        self.connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.to_app: Channel[Message] = Channel(self.loop)
        self.from_app: Channel[Message] = Channel(self.loop)
        self._pending = b""  # frames the client has not read yet
        self._partial: list[Any] = []  # a fragmented message's parts so far
        self.client_closed = False
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def _scope(self) -> dict[str, Any]:
        request = self.request
        scope = base_scope(request, self.transport.client, self.transport.root_path)
        protocols = request.headers.get("sec-websocket-protocol")
        scope.update(
            type="websocket",
            scheme={"http": "ws", "https": "wss"}.get(request.url.scheme, request.url.scheme),
            subprotocols=[p.strip() for p in protocols.split(",")] if protocols else [],
            extensions={"websocket.http.response": {}},
        )
        return scope

    def _upgrade_request(self) -> bytes:
        """The request as it would reach a server, for wsproto's handshake."""
        request = self.request
        target = request.url.raw_path
        lines = [b"GET " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in request.headers.raw]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    # --- the handshake ---

    async def handshake(self) -> httpx.Response:
        request = self.request
        self.connection.receive_data(self._upgrade_request())
        if not any(isinstance(event, ws.Request) for event in self.connection.events()):
            return httpx.Response(400, text="Not a valid WebSocket upgrade request")
        self.to_app.put({"type": "websocket.connect"})
        self.task = self.loop.create_task(
            run_app(self.transport.app, self._scope(), self._receive, self._send),
            name=f"fastapi-e2e WEBSOCKET {request.url}",
        )
        self.task.add_done_callback(self._app_returned)
        self.transport.track(self)
        timeout = read_timeout(request)
        try:
            message = await self.from_app.get(timeout)
        except asyncio.TimeoutError:
            await self._cancel()
            text = WEBSOCKET_NOT_ACCEPTED.format(url=request.url, timeout=timeout)
            raise httpx.ReadTimeout(text + self.transport.explanation(), request=request) from None
        except BaseException:
            await self._cancel()
            raise
        kind = None if message is None else message["type"]
        if message is not None and kind == "websocket.accept":
            accept = self.connection.send(
                ws.AcceptConnection(
                    subprotocol=message.get("subprotocol"),
                    extra_headers=list(message.get("headers", [])),
                )
            )
            head = accept.decode("latin-1").split("\r\n")[1:]
            headers = [(n, v) for n, _, v in (line.partition(": ") for line in head) if v]
            return httpx.Response(101, headers=headers, extensions={"network_stream": self})
        self.transport.forget(self)
        if message is not None and kind == "websocket.http.response.start":
            body = b""
            while (part := await self.from_app.get(timeout)) is not None:
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            await self._finish()
            headers = message.get("headers", [])
            return httpx.Response(message["status"], headers=headers, content=body)
        await self._finish()
        # Closed before accepting: servers answer 403; raised or returned: 500.
        status = 403 if kind == "websocket.close" else 500
        return httpx.Response(status, headers=[("content-length", "0")])

    # --- the app's side ---

    def _app_returned(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self.error = task.exception()
        self.from_app.close()

    async def _receive(self) -> Message:
        message = await self.to_app.get()
        if message is None:  # the client left without a close frame
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        return message

    async def _send(self, message: Message) -> None:
        if self.client_closed and message["type"] == "websocket.send":
            raise ClientDisconnected("the client closed this WebSocket")
        self.from_app.put(message)
        await asyncio.sleep(0)  # let the client read, as a socket write would

    # --- the client's side (httpcore's network stream, used by httpx-ws) ---

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self._pending:
            try:
                message = await self.from_app.get(timeout)
            except asyncio.TimeoutError:
                raise httpcore.ReadTimeout("no frame from the app in time") from None
            if message is None:
                self._pending = self._closing_frame()
                if not self._pending:
                    return b""  # the app returned and the close is done: end of stream
            else:
                self._pending = self._frame(message)
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    def _frame(self, message: Message) -> bytes:
        if self.connection.state is not ConnectionState.OPEN:
            return b""
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                return self.connection.send(ws.TextMessage(data=text))
            return self.connection.send(ws.BytesMessage(data=message.get("bytes") or b""))
        if kind == "websocket.close":
            code = message.get("code", 1000)
            return self.connection.send(ws.CloseConnection(code, message.get("reason") or ""))
        return b""

    def _closing_frame(self) -> bytes:
        """The app returned: close the socket as a server does, 1011 if it raised."""
        if self.connection.state is not ConnectionState.OPEN:
            return b""
        code = 1000 if self.error is None else INTERNAL_ERROR
        return self.connection.send(ws.CloseConnection(code, ""))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self.connection.state is ConnectionState.CLOSED:
            raise httpcore.WriteError("the WebSocket is closed")
        self.connection.receive_data(buffer)
        for event in self.connection.events():
            if isinstance(event, ws.Message):
                self._partial.append(event.data)
                if event.message_finished:
                    data, self._partial = self._partial, []
                    if isinstance(event, ws.TextMessage):
                        self.to_app.put({"type": "websocket.receive", "text": "".join(data)})
                    else:
                        self.to_app.put({"type": "websocket.receive", "bytes": b"".join(data)})
            elif isinstance(event, ws.Ping):
                self._pending += self.connection.send(event.response())
            elif isinstance(event, ws.CloseConnection):
                self.client_closed = True
                if self.connection.state is ConnectionState.REMOTE_CLOSING:
                    self._pending += self.connection.send(event.response())
                self.to_app.put(
                    {"type": "websocket.disconnect", "code": event.code, "reason": event.reason}
                )

    async def aclose(self) -> None:
        """The client is done: the app gets its disconnect, and a moment to return."""
        self.transport.forget(self)
        task = self.task
        if task is None or task.done():
            return
        self.client_closed = True
        await self._finish()

    async def _finish(self) -> None:
        """Tell the app the client left, give it a moment to return, then cancel it."""
        task = self.task
        if task is not None and not task.done():
            self.to_app.close()
            await asyncio.wait({task}, timeout=DISCONNECT_GRACE)
        await self._cancel()

    async def _cancel(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def get_extra_info(self, info: str) -> Any:
        return None
