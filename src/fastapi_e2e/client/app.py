"""Build the app once, run its lifespan, and record the requests it handles.

``async with AppUnderTest(target, timeout) as running:`` yields the app with its
lifespan started by asgi-lifespan's LifespanManager; ``running.asgi`` is the ASGI
callable the HTTP client talks to.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any

from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_e2e.database.gate import APP_CODE, SessionGate, request_scope
from fastapi_e2e.diagnosis.record import (
    Recording,
    observe_routes,
    record_exchange,
    record_websocket,
)
from fastapi_e2e.errors import (
    LIFESPAN_FAILED,
    LIFESPAN_TIMEOUT,
    NOT_AN_APP,
    ConfigError,
    LifespanError,
)


async def build_app(target: Any) -> Starlette:
    """The app ``target`` names: the app itself, or what a (possibly async) factory returns."""
    app = target
    if not isinstance(app, Starlette) and callable(app):
        app = app()
        if inspect.isawaitable(app):
            app = await app
    if not isinstance(app, Starlette):
        raise ConfigError(NOT_AN_APP.format(value=target))
    return app


def _copy_state_per_request(app: ASGIApp) -> ASGIApp:
    """Give each request its own shallow copy of the lifespan state, as servers do.

    asgi-lifespan hands every request the same dict; a route that writes to
    ``request.state`` would then leak into the next request.
    """

    async def copy_state(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and "state" in scope:
            scope["state"] = dict(scope["state"])
        await app(scope, receive, send)

    return copy_state


def _instrument(app: ASGIApp, running: AppUnderTest) -> ASGIApp:
    """Mark each request for the session gate, and record it into the test's recording."""

    async def instrumented(scope: Scope, receive: Receive, send: Send) -> None:
        with request_scope(running.gate, running.owner):
            recording = running.recording
            kind = scope["type"]
            if recording is None or kind not in ("http", "websocket"):
                await app(scope, receive, send)
            elif kind == "http":
                await record_exchange(recording, app, scope, receive, send)
            else:
                await record_websocket(recording, app, scope, receive, send)

    return instrumented


class AppUnderTest:
    """The app with its lifespan running, for the length of the ``async with``."""

    def __init__(self, target: Any, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.recording: Recording | None = None
        """The running test's recording of exchanges (None between tests)."""
        self.gate: SessionGate | None = None
        """The running test's session gate; requests are marked with it (None between tests)."""
        self.owner: object = None
        """The running test's transaction (or own database); requests are marked with it
        (None between tests), so work their left-over tasks do later is recognised."""

    async def __aenter__(self) -> AppUnderTest:
        token = APP_CODE.set(True)  # the lifespan's task (and its tasks) inherit it
        try:
            await self._start()
        finally:
            APP_CODE.reset(token)
        return self

    async def _start(self) -> None:
        self.app = await build_app(self.target)
        self._manager = LifespanManager(
            _copy_state_per_request(self.app),
            startup_timeout=self.timeout,
            shutdown_timeout=self.timeout,
        )
        await self._run_phase("startup", self._manager.__aenter__)
        observe_routes(self.app)
        self.asgi: ASGIApp = _instrument(self._manager.app, self)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = APP_CODE.set(True)
        try:
            await self._run_phase("shutdown", lambda: self._manager.__aexit__(exc_type, exc, tb))
        finally:
            APP_CODE.reset(token)

    async def _run_phase(self, phase: str, step: Callable[[], Any]) -> None:
        try:
            await step()
        except TimeoutError:
            raise LifespanError(
                LIFESPAN_TIMEOUT.format(phase=phase, timeout=self.timeout)
            ) from None
        except Exception as exc:
            raise LifespanError(LIFESPAN_FAILED.format(phase=phase, cause=_describe(exc))) from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
