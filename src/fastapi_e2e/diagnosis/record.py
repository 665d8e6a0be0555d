"""Capture, per test, each HTTP exchange, the exceptions the app raised and the SQL it ran.

Capturing is meant to cost almost nothing: references and a few timestamps are kept,
and everything is formatted only when a report is rendered. Bodies, exchanges and
statements are bounded, so a long test cannot grow the recording without limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_e2e import compat

_ROUTE_OBSERVED = "_fastapi_e2e_observed"


@dataclass(frozen=True)
class Limits:
    """How much one test's recording keeps."""

    body_bytes: int = 64 * 1024
    """Bytes kept of each request and response body (the rest is counted, not kept)."""
    exchanges: int = 100
    """Exchanges kept per test; older ones are dropped and counted."""
    statements: int = 200
    """SQL statements kept per test; older ones are dropped and counted."""
    chunks: int = 200
    """Body chunks of a streamed response, and WebSocket frames, kept per exchange (the
    first ones; the rest are counted)."""
    frame_bytes: int = 4096
    """Bytes kept of each WebSocket frame."""


class CapturedError:
    """An exception the app raised while handling a request, with its traceback.

    The traceback is extracted when the exception is seen: Starlette clears the
    traceback of exceptions its handlers turned into responses.
    """

    __slots__ = ("escaped", "exception", "trace")

    def __init__(self, exception: BaseException, *, escaped: bool) -> None:
        self.exception = exception
        self.escaped = escaped
        """True if it propagated out of the app; False if a handler or middleware
        turned it into a response."""
        self.trace = traceback.TracebackException.from_exception(exception, lookup_lines=False)


class Body:
    """The first ``limit`` bytes of a body, and its full size."""

    __slots__ = ("data", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def cut(self) -> bool:
        return self.size > len(self.data)


class Frame:
    """One WebSocket message: which way it went, when, and its first bytes."""

    __slots__ = ("at", "data", "from_client", "size")

    def __init__(self, from_client: bool, data: str | bytes, limit: int) -> None:
        self.at = time.perf_counter()
        self.from_client = from_client
        self.size = len(data)
        self.data = data[:limit]


class Exchange:
    """One request the app handled in the test, and what it answered."""

    __slots__ = (
        "cancelled",
        "chunk_count",
        "chunks",
        "close",
        "complete",
        "disconnected",
        "ended",
        "endpoint",
        "errors",
        "frame_count",
        "frames",
        "index",
        "limits",
        "method",
        "request_body",
        "request_headers",
        "response_body",
        "response_headers",
        "route",
        "scope",
        "started",
        "status",
    )

    def __init__(self, index: int, scope: Scope, limits: Limits) -> None:
        self.index = index
        self.scope = scope
        self.limits = limits
        websocket = scope.get("type") == "websocket"
        self.method: str = "WEBSOCKET" if websocket else scope.get("method", "GET")
        self.request_headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
        self.request_body = Body(limits.body_bytes)
        self.response_body = Body(limits.body_bytes)
        self.chunks: list[tuple[float, int]] = []
        """(time, size) of each response body message kept, in order."""
        self.chunk_count = 0
        self.complete = False
        """The app sent the body's last message."""
        self.disconnected = False
        """The app was told the client left (http.disconnect before the body's end)."""
        self.cancelled = False
        self.frames: list[Frame] | None = [] if websocket else None
        self.frame_count = 0
        self.close: tuple[str, int, str] | None = None
        """A WebSocket's end: who closed it (client or app), the code and the reason."""
        self.response_headers: Iterable[tuple[bytes, bytes]] = ()
        self.status: int | None = None
        self.errors: list[CapturedError] = []
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.route: str | None = None
        self.endpoint: Any = None

    @property
    def url(self) -> str:
        scope = self.scope
        scheme = scope.get("scheme", "http")
        host, port = scope.get("server") or ("testserver", None)
        default_port = {"http": 80, "https": 443}.get(scheme)
        netloc = host if port in (None, default_port) else f"{host}:{port}"
        url = f"{scheme}://{netloc}{scope.get('root_path', '')}{scope.get('path', '')}"
        query = scope.get("query_string", b"")
        return f"{url}?{query.decode('latin-1')}" if query else url

    @property
    def target(self) -> str:
        """Path and query, as a client would pass them."""
        scope = self.scope
        query = scope.get("query_string", b"")
        path = f"{scope.get('root_path', '')}{scope.get('path', '')}"
        return f"{path}?{query.decode('latin-1')}" if query else path

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def add_chunk(self, body: bytes, more_body: bool) -> None:
        self.response_body.add(body)
        self.chunk_count += 1
        if len(self.chunks) < self.limits.chunks:
            self.chunks.append((time.perf_counter(), len(body)))
        if not more_body:
            self.complete = True

    def add_frame(self, from_client: bool, message: Message) -> None:
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        self.frame_count += 1
        assert self.frames is not None
        if len(self.frames) < self.limits.chunks:
            self.frames.append(Frame(from_client, data, self.limits.frame_bytes))

    @property
    def ended_by(self) -> str | None:
        """How the response body ended: app, client, raised, cancelled (None: unknown)."""
        if self.complete:
            return "app"
        if self.disconnected:
            return "client"
        if self.cancelled:
            return "cancelled"
        if any(error.escaped for error in self.errors):
            return "raised"
        return None

    def capture(self, exception: BaseException, *, escaped: bool) -> None:
        for error in self.errors:
            if error.exception is exception:
                error.escaped = error.escaped or escaped
                return
        self.errors.append(CapturedError(exception, escaped=escaped))

    def server_errors(self) -> list[CapturedError]:
        """Exceptions behind a 5xx (or no) response, or that escaped the app."""
        failed = self.status is None or self.status >= 500
        return [error for error in self.errors if error.escaped or failed]

    def finish(self) -> None:
        self.ended = time.perf_counter()
        scope = self.scope
        route = scope.get("route")
        self.route = getattr(route, "path", None)
        self.endpoint = scope.get("endpoint")


class Statement:
    """One SQL statement run on the test's connection."""

    __slots__ = (
        "compiled",
        "duration",
        "error",
        "exchange",
        "executemany",
        "parameters",
        "rows",
        "sql",
        "started",
    )

    def __init__(
        self,
        sql: str,
        parameters: Any,
        compiled: Any,
        executemany: bool,
        exchange: Exchange | None,
    ) -> None:
        self.sql = sql
        self.parameters = parameters
        self.compiled = compiled
        self.executemany = executemany
        self.exchange = exchange
        self.started = time.perf_counter()
        self.duration: float | None = None
        self.rows: int | None = None
        self.error: BaseException | None = None

    @property
    def parameter_names(self) -> tuple[str, ...] | None:
        """Bind parameter names in positional order, when SQLAlchemy compiled the statement."""
        names = getattr(self.compiled, "positiontup", None)
        return tuple(names) if names else None


class Recording:
    """Everything captured during one test; built at test start, read at report time."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.started = time.perf_counter()
        self.exchanges: collections.deque[Exchange] = collections.deque(
            maxlen=self.limits.exchanges
        )
        self.exchange_count = 0
        self.statements: collections.deque[Statement] = collections.deque(
            maxlen=self.limits.statements
        )
        self.statement_count = 0
        self.notes: list[str] = []
        """What the harness did that changed the outcome (shown in the report)."""
        self.windows: list[list[Statement]] = []
        """Open query-count windows; each receives every statement run while open."""

    def open_exchange(self, scope: Scope) -> Exchange:
        self.exchange_count += 1
        exchange = Exchange(self.exchange_count, scope, self.limits)
        self.exchanges.append(exchange)
        return exchange

    def add_statement(self, statement: Statement) -> None:
        self.statement_count += 1
        self.statements.append(statement)
        for window in self.windows:
            window.append(statement)

    def server_errors(self) -> list[tuple[Exchange, CapturedError]]:
        return [(ex, error) for ex in self.exchanges for error in ex.server_errors()]

    @property
    def dropped_exchanges(self) -> int:
        return self.exchange_count - len(self.exchanges)

    @property
    def dropped_statements(self) -> int:
        return self.statement_count - len(self.statements)


CURRENT_EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "fastapi_e2e_exchange", default=None
)
"""The exchange being handled (inherited by tasks the request starts)."""


def _note_handled(exchange: Exchange) -> None:
    # A response sent while an exception is being handled is that handler's answer:
    # Starlette's exception handlers and ServerErrorMiddleware send from their except
    # block, so the exception is visible here though it never leaves the app.
    handled = sys.exc_info()[1]
    if handled is not None:
        exchange.capture(handled, escaped=False)


async def record_exchange(
    recording: Recording, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``app`` on one HTTP request, recording the exchange into ``recording``."""
    exchange = recording.open_exchange(scope)
    token = CURRENT_EXCHANGE.set(exchange)
    body_read = False

    async def recorded_receive() -> Message:
        nonlocal body_read
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            exchange.request_body.add(message.get("body", b""))
            body_read = not message.get("more_body", False)
        elif kind == "http.disconnect" and not exchange.complete:
            exchange.disconnected = True
        return message

    async def read_rest_of_body() -> None:
        # A route that ignores the body (a query-parameter POST) never receives it;
        # the in-process transport hands out the rest once the response is complete.
        try:
            while not body_read:
                if (await recorded_receive())["type"] != "http.request":
                    break
        except Exception:  # the transport gave up; keep what was read
            pass

    async def recorded_send(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            exchange.status = message["status"]
            exchange.response_headers = message.get("headers", ())
            _note_handled(exchange)
        elif kind == "http.response.body":
            exchange.add_chunk(message.get("body", b""), message.get("more_body", False))
        await send(message)

    try:
        await app(scope, recorded_receive, recorded_send)
    except Exception as exc:
        exchange.capture(exc, escaped=True)
        await read_rest_of_body()
        raise
    except asyncio.CancelledError:
        exchange.cancelled = True
        raise
    else:
        await read_rest_of_body()
    finally:
        exchange.finish()
        CURRENT_EXCHANGE.reset(token)


async def record_websocket(
    recording: Recording, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``app`` on one WebSocket, recording its frames each way into ``recording``."""
    exchange = recording.open_exchange(scope)
    token = CURRENT_EXCHANGE.set(exchange)

    async def recorded_receive() -> Message:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            exchange.add_frame(True, message)
        elif kind == "websocket.disconnect" and exchange.close is None:
            exchange.close = ("client", message.get("code", 1000), message.get("reason") or "")
        return message

    async def recorded_send(message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            exchange.add_frame(False, message)
        elif kind == "websocket.accept":
            exchange.status = 101
            exchange.response_headers = message.get("headers", ())
        elif kind == "websocket.close":
            if exchange.status is None:
                exchange.status = 403  # closed before accepting: what servers answer
            if exchange.close is None:
                exchange.close = ("app", message.get("code", 1000), message.get("reason") or "")
        elif kind == "websocket.http.response.start":
            exchange.status = message["status"]
            exchange.response_headers = message.get("headers", ())
        elif kind == "websocket.http.response.body":
            exchange.add_chunk(message.get("body", b""), message.get("more_body", False))
        await send(message)

    try:
        await app(scope, recorded_receive, recorded_send)
    except Exception as exc:
        # A route that lets the client's disconnect propagate did not fail.
        left = exchange.close is not None and exchange.close[0] == "client"
        disconnect = type(exc).__name__ == "WebSocketDisconnect"
        exchange.capture(exc, escaped=not (left and disconnect))
        raise
    except asyncio.CancelledError:
        exchange.cancelled = True
        raise
    finally:
        exchange.finish()
        CURRENT_EXCHANGE.reset(token)


def _observe_route(app: ASGIApp) -> ASGIApp:
    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        exchange = CURRENT_EXCHANGE.get()
        if exchange is None:
            await app(scope, receive, send)
            return

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                _note_handled(exchange)
            await send(message)

        try:
            await app(scope, receive, observed_send)
        except Exception as exc:
            # Seen here because middleware outside (BaseHTTPMiddleware catching
            # call_next's error) may turn it into a response from another task.
            exchange.capture(exc, escaped=False)
            raise

    setattr(observed, _ROUTE_OBSERVED, True)
    return observed


def observe_routes(app: Any) -> None:
    """Watch each route of ``app`` for exceptions, including those handled inside it.

    Route handlers run inside Starlette's exception handling; an exception a handler
    turns into a response there, or that middleware swallows, never reaches the
    outer ASGI wrapper. Idempotent.
    """
    for route in getattr(getattr(app, "router", None), "routes", ()):
        inner = compat.route_app(route)
        if callable(inner) and not getattr(inner, _ROUTE_OBSERVED, False):
            compat.replace_route_app(route, _observe_route(inner))


def start_statement(
    recording: Recording, sql: str, parameters: Any, context: Any, executemany: bool
) -> Statement:
    """Record a statement about to run on the test's connection."""
    statement = Statement(
        sql, parameters, getattr(context, "compiled", None), executemany, CURRENT_EXCHANGE.get()
    )
    recording.add_statement(statement)
    return statement


def finish_statement(statement: Statement, cursor: Any) -> None:
    statement.duration = time.perf_counter() - statement.started
    rowcount = getattr(cursor, "rowcount", -1)
    if rowcount is not None and rowcount >= 0:
        statement.rows = rowcount
    elif getattr(cursor, "description", None) is not None:
        statement.rows = compat.fetched_row_count(cursor)


def fail_statement(statement: Statement, error: BaseException) -> None:
    statement.duration = time.perf_counter() - statement.started
    statement.error = error
