"""The app under test served over TCP on 127.0.0.1, on the session loop, by uvicorn.

``async with LiveServer(running) as server:`` serves the app that ``running``
(an ``AppUnderTest``) already built and started: uvicorn runs with ``lifespan="off"``
so the lifespan is not run a second time, binds only the loopback address, installs no
signal handlers and configures no logging. Between ``server.serve(test)`` and
``await server.finish()``, requests run in that test's transaction like the in-process
client's (and are recorded into its report); otherwise they are answered 503.

uvicorn (``pip install "pytest-fastapi-e2e[live]"``) is imported only here, by the
first test that asks for ``live_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from types import TracebackType
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from fastapi_e2e import compat
from fastapi_e2e.errors import LIVE_SERVER_IDLE, LIVE_SERVER_NEEDS_UVICORN, ConfigError, E2EError

if TYPE_CHECKING:
    from fastapi_e2e.client.app import AppUnderTest
    from fastapi_e2e.harness import E2ETest

HOST = "127.0.0.1"
"""Loopback only: a test server must not be reachable from the network."""

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0
"""How long the end of a test waits for its requests still running (a real server
sends the response before the app's dependencies clean up) before cancelling them."""


class LiveServer:
    """uvicorn serving the running app on ``http://127.0.0.1:<free port>``."""

    def __init__(self, running: AppUnderTest) -> None:
        self.running = running
        self.host = HOST
        """The address it listens on: always ``127.0.0.1``."""
        self.port = 0
        """The TCP port it listens on, chosen free by the OS when it starts."""
        self.startup_seconds = 0.0
        self._test: E2ETest | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"<LiveServer {self.url}>"

    async def __aenter__(self) -> LiveServer:
        started = time.perf_counter()
        try:
            import uvicorn
        except ImportError as exc:
            raise ConfigError(LIVE_SERVER_NEEDS_UVICORN) from exc
        # Bound here rather than by uvicorn: the port is known at once, and nothing
        # but loopback can ever be bound, whatever uvicorn's defaults become.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((HOST, 0))
            self.port = self._socket.getsockname()[1]
            config = uvicorn.Config(
                self._serve,
                host=HOST,
                port=self.port,
                interface="asgi3",
                lifespan="off",  # the harness already runs the app's lifespan
                log_config=None,  # leave the project's logging configuration alone
                access_log=False,  # the failure report records each request instead
                proxy_headers=False,
                timeout_graceful_shutdown=int(STOP_TIMEOUT / 2),
            )
            self._server = compat.server_without_signal_handlers(config)
            self._task = asyncio.create_task(
                self._server.serve(sockets=[self._socket]), name="fastapi-e2e live server"
            )
            await self._wait_started()
        except BaseException:
            self._socket.close()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    async def _wait_started(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not self._server.started:
            if self._task.done():
                self._task.result()  # its exception, if it failed
                raise E2EError(f"fastapi-e2e: uvicorn stopped before serving on {self.url}.")
            if loop.time() > deadline:
                raise E2EError(
                    f"fastapi-e2e: uvicorn did not start serving on {self.url} within "
                    f"{START_TIMEOUT:g} s."
                )
            await asyncio.sleep(0.001)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._test = None
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._socket.close()  # uvicorn closed it; again in case it never got to

    def serve(self, test: E2ETest) -> None:
        """Answer requests in ``test``'s transaction from now on."""
        self._test = test

    async def finish(self) -> None:
        """Answer 503 from now on, and wait for the requests still running: the
        response reaches the browser before the app's dependencies have cleaned up,
        and that work must end before the test's transaction does. Those still running
        after DRAIN_TIMEOUT (a stream the browser keeps open) are cancelled."""
        self._test = None
        if not self._in_flight:
            return
        _done, pending = await asyncio.wait(set(self._in_flight), timeout=DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=DRAIN_TIMEOUT)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        test = self._test
        if test is None:
            await _refuse(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None  # uvicorn runs each connection's request in a task
        self._in_flight.add(task)
        try:
            if scope["type"] == "http":
                await test.flush_pending()  # as the in-process client does
            await self.running.asgi(scope, receive, send)
        finally:
            self._in_flight.discard(task)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """503 with the reason, for a request that arrives when no test can own it."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1013, "reason": "no test is running"})
        return
    if scope["type"] != "http":
        return
    message = LIVE_SERVER_IDLE.format(method=scope.get("method", "GET"), path=scope.get("path"))
    body = json.dumps({"detail": message}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
