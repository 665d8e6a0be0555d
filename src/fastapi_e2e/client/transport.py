"""The client's transport: the app in a task of its own on the test's loop, its response
handed back as soon as it starts and its body chunk by chunk, as a server would.

Why not ``httpx.ASGITransport``: it waits for the whole body (a server-sent events
stream never returns) and ignores timeouts. Here the client's read timeout applies
to the first message and then between chunks; closing a response early tells the app
the client left (``http.disconnect``), and waits for it to stop. WebSocket upgrades
(httpx-ws) are handed to ``client/websocket.py``.

The app's task copies the caller's context, so the request is still inside the
test's request scope and recording: both are set by the app wrapper the task runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_e2e.client.channel import Channel
from fastapi_e2e.errors import (
    APP_DID_NOT_FINISH,
    REQUEST_TIMEOUT,
    STREAM_BROKEN,
    STREAM_TIMEOUT,
    STREAM_UNFINISHED,
)

HIGH_WATER = 64 * 1024
"""Bytes of body the app may send ahead of the client before its ``send`` waits (a
server's socket buffer does the same; a producer that never awaits would otherwise
starve the loop)."""

DISCONNECT_GRACE = 1.0
"""Seconds an app gets to stop after the client left a stream, before it is cancelled
(Starlette's StreamingResponse stops at once: it listens for the disconnect)."""


async def run_app(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """The app's call as a coroutine, for its task (an ASGI app may return any awaitable)."""
    await app(scope, receive, send)


def read_timeout(request: httpx.Request) -> float | None:
    timeout: float | None = request.extensions.get("timeout", {}).get("read")
    return timeout


def base_scope(request: httpx.Request, client: tuple[str, int], root_path: str) -> dict[str, Any]:
    """The ASGI scope keys an HTTP request and a WebSocket share, as httpx's transport
    builds them."""
    url = request.url
    return {
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port),
        "client": client,
        "root_path": root_path,
    }


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Send requests to an ASGI app in-process, streaming responses as they are sent.

    An exception the app raises before its response starts is answered 500 (it is
    recorded for the failure report); one raised mid-body breaks the stream with
    ``httpx.RemoteProtocolError``. ``explain_timeout`` returns extra text for a
    timeout's error (what the app was waiting for).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        explain_timeout: Callable[[], str] | None = None,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
    ) -> None:
        self.app = app
        self.explain_timeout = explain_timeout
        self.root_path = root_path
        self.client = client
        self._open: set[Any] = set()  # calls and sockets whose app may still run

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("upgrade", "").lower() == "websocket":
            from fastapi_e2e.client import websocket  # wsproto: only for WebSocket tests

            return await websocket.open_websocket(self, request)
        return await _Call(self, request).start()

    def explanation(self) -> str:
        return "" if self.explain_timeout is None else self.explain_timeout()

    def track(self, call: Any) -> None:
        self._open.add(call)

    def forget(self, call: Any) -> None:
        self._open.discard(call)

    async def aclose(self) -> None:
        # Responses nobody closed (a stream left unread): the client leaves them now,
        # so no app task outlives the test.
        for call in list(self._open):
            await call.aclose()


class _Call:
    """One request: the app's task, the messages it sent, and the client's side."""

    def __init__(self, transport: StreamingASGITransport, request: httpx.Request) -> None:
        self.transport = transport
        self.request = request
        self.timeout = read_timeout(request)
        self.loop = asyncio.get_running_loop()
        self.messages: Channel[Message] = Channel(self.loop)
        self._body = request.stream.__aiter__()  # type: ignore[union-attr]
        self._request_read = False
        self._ended = asyncio.Event()  # response complete, or the client left
        self.client_left = False
        self.body_done = False
        self.head = request.method == "HEAD"
        self.chunks = 0
        self.size = 0
        self.error: BaseException | None = None
        self._buffered = 0
        self._dropped = 0
        self._drained: asyncio.Future[None] | None = None
        scope = base_scope(request, transport.client, transport.root_path)
        scope.update(type="http", method=request.method, scheme=request.url.scheme)
        self.task: asyncio.Task[None] = self.loop.create_task(
            run_app(transport.app, scope, self.receive, self.send),
            name=f"fastapi-e2e {request.method} {request.url}",
        )
        self.task.add_done_callback(self._app_returned)
        transport.track(self)

    def _app_returned(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self.error = task.exception()  # also marks it retrieved
        self.messages.close()
        if not self.body_done:
            self._ended.set()

    # --- the app's side ---

    async def receive(self) -> Message:
        if not self._request_read:
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                self._request_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self._ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.client_left:
            # As a server does for a closed connection: drop it, without suspending
            # (Starlette cancels a stream when told the client left; cancelled here,
            # outside the body's generator, the generator would be left unclosed).
            # Now and then yield, so an app that never awaits can still be cancelled.
            self._dropped += 1
            if self._dropped % 64 == 0:
                await asyncio.sleep(0)
            return
        if message["type"] == "http.response.body":
            if self.head:
                message = {**message, "body": b""}
            if not message.get("more_body", False):
                self._ended.set()
            self._buffered += len(message.get("body", b""))
        self.messages.put(message)
        if self._buffered > HIGH_WATER:
            self._drained = self.loop.create_future()
            await self._drained

    def _take(self, message: Message) -> None:
        """The client took ``message``: let a waiting app send again once it caught up."""
        if message["type"] == "http.response.body":
            self._buffered -= len(message.get("body", b""))
        drained = self._drained
        if drained is not None and (self._buffered <= HIGH_WATER // 2 or self.client_left):
            self._drained = None
            if not drained.done():
                drained.set_result(None)

    # --- the client's side ---

    async def _next(self, *, started: bool = False) -> Message | None:
        try:
            message = await self.messages.get(self.timeout)
        except asyncio.TimeoutError:
            if started:
                # Mid-stream the client gives up as it would on a server: it leaves,
                # and the app is told so (and cancelled only if it does not stop).
                await self.aclose()
                raise
            self._cancel_now()
            await asyncio.wait({self.task})
            self.transport.forget(self)
            raise
        except BaseException:
            # The caller was cancelled: so is the app (the transport's aclose, at the
            # latest when the test ends, waits for it to finish).
            self._cancel_now()
            raise
        if message is not None:
            self._take(message)
        return message

    def _cancel_now(self) -> None:
        self.client_left = True
        self.task.cancel()

    async def start(self) -> httpx.Response:
        request = self.request
        try:
            message = await self._next()
        except asyncio.TimeoutError:
            text = REQUEST_TIMEOUT.format(
                method=request.method, url=request.url, timeout=self.timeout
            )
            raise httpx.ReadTimeout(text + self.transport.explanation(), request=request) from None
        if message is None or message["type"] != "http.response.start":
            # The app raised (or returned) before answering: 500, as servers answer.
            self.body_done = True
            self.transport.forget(self)
            return httpx.Response(500, headers=[], request=request)
        return httpx.Response(
            message["status"], headers=message.get("headers", []), stream=_Body(self)
        )

    async def next_chunk(self) -> bytes | None:
        """The next body chunk; None at the end of the body (once the app returned)."""
        if self.body_done:
            return None
        request = self.request
        try:
            message = await self._next(started=True)
        except asyncio.TimeoutError:
            text = STREAM_TIMEOUT.format(
                method=request.method,
                url=request.url,
                timeout=self.timeout,
                chunks=self.chunks,
                size=self.size,
            )
            raise httpx.ReadTimeout(text, request=request) from None
        if message is None:
            self.body_done = True
            self.transport.forget(self)
            error = self.error
            if error is not None:
                text = STREAM_BROKEN.format(
                    error=f"{type(error).__name__}: {error}".rstrip(": "),
                    method=request.method,
                    url=request.url,
                    chunks=self.chunks,
                    size=self.size,
                )
                raise httpx.RemoteProtocolError(text, request=request)
            text = STREAM_UNFINISHED.format(method=request.method, url=request.url)
            raise httpx.RemoteProtocolError(text, request=request)
        chunk: bytes = message.get("body", b"")
        self.chunks += 1
        self.size += len(chunk)
        if not message.get("more_body", False):
            await self._wait_for_app()
        return chunk

    async def _wait_for_app(self) -> None:
        """The body is complete: wait for the app to return (its background tasks),
        as the client always has before handing back a response."""
        self.body_done = True
        if not self.task.done():
            try:
                while await self.messages.get(self.timeout) is not None:
                    pass  # None once the app returned; anything sent after the body is dropped
            except asyncio.TimeoutError:
                self.task.cancel()
                await asyncio.wait({self.task})
                text = APP_DID_NOT_FINISH.format(
                    method=self.request.method, url=self.request.url, timeout=self.timeout
                )
                raise httpx.ReadTimeout(text, request=self.request) from None
            finally:
                self.transport.forget(self)
        else:
            self.transport.forget(self)

    async def aclose(self) -> None:
        """The client is done with the response: if the app is still sending, it left."""
        self.transport.forget(self)
        if self.task.done():
            return
        self.client_left = True
        self._ended.set()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        await asyncio.wait({self.task}, timeout=DISCONNECT_GRACE)
        if not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task})


class _Body(httpx.AsyncByteStream):
    """The response body as the app sends it."""

    def __init__(self, call: _Call) -> None:
        self.call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.call.next_chunk()) is not None:
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        await self.call.aclose()
