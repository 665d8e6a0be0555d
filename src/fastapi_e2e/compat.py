"""Every private or undocumented API of another library the harness uses, in one room.

Each entry says why no public API does the job. ``tests/test_compat.py`` pins each
one, so a release that moves or removes it fails there first, with its name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

# The libraries are imported where used: the plugin imports this module at start-up,
# and a run that never uses the harness must not pay for SQLAlchemy or asyncpg.

# --- SQLAlchemy -------------------------------------------------------------------


def _sqlalchemy_await() -> Callable[[Awaitable[Any]], Any]:
    try:  # 2.1 names it await_; 2.0 only has await_only (deprecated in 2.1, gone in 2.2)
        from sqlalchemy.util import await_
    except ImportError:  # pragma: no cover - SQLAlchemy 2.0
        from sqlalchemy.util import await_only as await_
    return await_


def await_in_greenlet(awaitable: Awaitable[T]) -> T:
    """Await from sync code that SQLAlchemy's asyncio layer is running.

    Why private: the app's connections wait for their turn on the test's one
    connection inside DBAPI calls, which SQLAlchemy runs as sync code in a greenlet;
    SQLAlchemy's own adapters await the driver exactly this way, and no public API
    exposes it.
    """
    global _await
    if _await is None:
        _await = _sqlalchemy_await()
    return _await(awaitable)  # type: ignore[no-any-return]


_await: Callable[[Awaitable[Any]], Any] | None = None


async def run_in_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """Run sync SQLAlchemy code that awaits inside (``fn``) from async code.

    Why private: the test's connect+begin and rollback+close each take one greenlet
    hop here instead of the async API's one per call (~15 µs each, on every test).
    """
    from sqlalchemy.util import greenlet_spawn

    return await greenlet_spawn(fn, *args)


def lift_overflow_limit(pool: Any) -> Any:
    """Let a QueuePool of the app open as many connections as its requests ask for.

    Why private: during a test the app's connections take turns on the test's one
    connection, so a request holding a turn that needs a second pooled connection
    would wait for slots held by requests waiting for its turn: a deadlock
    production never has. Pinned connections cost nothing until used outside a
    test, so lifting the limit is free; SQLAlchemy reads ``-1`` as "no limit" and
    has no public way to change it after the engine is made.
    """
    previous = getattr(pool, "_max_overflow", None)
    if previous is not None:
        pool._max_overflow = -1
    return previous


def restore_overflow_limit(pool: Any, previous: Any) -> None:
    """Undo ``lift_overflow_limit`` (when the run ends)."""
    if previous is not None:
        pool._max_overflow = previous


def deregister_dialect(registry: Any, name: str) -> None:
    """Give a dialect name back to SQLAlchemy's built-in one.

    Why private: ``registry.deregister`` exists only from SQLAlchemy 2.1; 2.0 keeps
    the registered loaders in the ``impls`` dict it looks in first.
    """
    if hasattr(registry, "deregister"):
        if name in registry.impls:
            registry.deregister(name)
    else:  # SQLAlchemy 2.0
        registry.impls.pop(name, None)


def forget_prepared_statements(dialect: Any) -> None:
    """Make the asyncpg dialect's connections prepare every statement anew.

    Why private: DDL in a test (rolled back at its end) changes what statements
    prepared before it return, and asyncpg then raises InvalidCachedStatementError on
    the next use of one, in whichever test comes next on the pooled connection.
    SQLAlchemy's asyncpg dialect recovers only after raising that error once, through
    ``_invalidate_schema_cache()`` (a timestamp its connections compare before each
    prepare); calling it ahead of the error is the one way to avoid it. psycopg's
    dialect has none: psycopg drops its prepared statements itself on ROLLBACK.
    """
    invalidate = getattr(dialect, "_invalidate_schema_cache", None)
    if invalidate is not None:
        invalidate()


def fetched_row_count(cursor: Any) -> int | None:
    """How many rows a SELECT returned, for the report, from the asyncpg adapter's cursor.

    Why private: asyncpg's adapter fetches a SELECT's rows eagerly and reports no
    rowcount for them; the count is only in its buffer. None for other drivers.
    """
    rows = getattr(cursor, "_rows", None)
    return len(rows) if rows is not None else None


# --- asyncpg ------------------------------------------------------------------------

_original_connect: Any = None


def original_asyncpg_connect() -> Any:
    """asyncpg's own connect(), from before the run replaced it: what the wired engines
    and the harness's admin work connect with."""
    global _original_connect
    if _original_connect is None:
        import asyncpg.connection

        _original_connect = asyncpg.connection.connect
    return _original_connect


def open_with(params: dict[str, Any], creator: Callable[..., Awaitable[Any]]) -> bool:
    """Have SQLAlchemy's async dialect (asyncpg, psycopg) open one connection with
    ``creator(**kwargs)`` (the driver's connect arguments); False if the engine brings
    a creator of its own.

    Why private: SQLAlchemy documents ``async_creator`` on ``create_async_engine``,
    which fixes one creator for a whole engine; the dialects' DBAPI ``connect()``
    takes it per connection as the ``async_creator_fn`` keyword, which that option is
    built on. The wiring chooses per connection: the run's database, or a
    commits-mode test's own (``database/warm.py``).
    """
    if "async_creator_fn" in params:
        return False
    params["async_creator_fn"] = creator
    return True


@contextmanager
def asyncpg_connect_replaced(wrapper: Callable[..., Awaitable[Any]]) -> Iterator[None]:
    """Route ``asyncpg.connect()`` and the pools' connects through ``wrapper(connect, ...)``.

    Why private: asyncpg has no hook for connections it makes. ``Pool`` reads the
    module attribute ``asyncpg.connection.connect`` when it is created, and
    ``asyncpg.connect`` is the same function re-exported; both are replaced for
    the run and put back after it. Code that did ``from asyncpg import connect``
    before the run keeps the original.
    """
    import asyncpg
    import asyncpg.connection

    original = original_asyncpg_connect()
    saved = (asyncpg.connect, asyncpg.connection.connect)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        return await wrapper(original, *args, **kwargs)

    asyncpg.connect = asyncpg.connection.connect = connect
    try:
        yield
    finally:
        asyncpg.connect, asyncpg.connection.connect = saved


# --- Starlette ---------------------------------------------------------------------


def route_app(route: Any) -> Any:
    """The ASGI callable a Starlette route dispatches to (``route.app``), if any."""
    return getattr(route, "app", None)


def replace_route_app(route: Any, app: Any) -> None:
    """Make a route dispatch to ``app`` (a wrapper around its own ``route.app``).

    Why private: exceptions a route's handlers turn into responses, or middleware
    swallows, never reach an outer ASGI wrapper; wrapping each route's ASGI callable
    is the one place they can be seen, and Starlette documents no way to wrap it.
    """
    route.app = app


# --- pytest and pytest-asyncio ----------------------------------------------------

SESSION_RUNNER_FIXTURE = "_session_scoped_runner"
"""pytest-asyncio's runner for the session-scoped loop.

Why private: the harness must drive setup and teardown on the session loop from a
sync fixture (so the loop is the same whatever the user's pytest-asyncio settings);
pytest-asyncio offers no public handle on its session runner.
"""

LOOP_SCOPE_ATTRIBUTE = "_loop_scope"
"""The attribute pytest-asyncio's ``fixture(loop_scope=...)`` writes on a fixture function.

Why private: async fixtures that name no loop scope must run on the session loop like
the tests; pytest-asyncio reads only this attribute and offers no hook to set it.
"""


def fixture_functions(item: Any, name: str) -> list[Any]:
    """The functions of the fixtures named ``name`` visible to ``item``, the one the test
    gets last; earlier ones are reached when a later one asks for ``name`` itself (a
    project's ``client`` fixture wrapping the harness's).

    Why private: a project may define its own ``client`` or ``app`` fixture, or
    parametrize an argument of that name; whether the test uses the harness's is known
    only from the fixtures pytest resolved, which it keeps in ``_fixtureinfo``.
    """
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get(name) if info is not None else None
    return [(d.func, d.argnames) for d in definitions] if definitions else []


def item_request(item: Any) -> Any:
    """The item's own fixture request.

    Why private: the per-test fixtures take no ``request`` (it costs ~0.1 ms per use in
    pytest 9) and still need the run fixture on the first test and ``anyio_backend``;
    pytest-asyncio reaches the runner fixture the same way.
    """
    return item._request


# --- uvicorn ------------------------------------------------------------------------


def server_without_signal_handlers(config: Any) -> Any:
    """A ``uvicorn.Server`` for ``config`` whose ``serve()`` installs no signal handlers.

    Why private: ``Server.serve()`` replaces the process's SIGINT and SIGTERM handlers
    (in the main thread) for as long as it serves, and restores them when it ends. The
    live server serves for the whole pytest session on the main thread's loop, so
    Ctrl-C would stop the server instead of interrupting pytest, and the handlers
    pytest-asyncio and the harness install meanwhile would be overwritten at the end.
    uvicorn has no option for it; ``capture_signals`` (uvicorn >= 0.29, which is why
    that is the floor) is the context manager ``serve()`` enters, overridden here
    with one that does nothing, as projects embedding uvicorn do.
    """
    import contextlib
    from collections.abc import Generator

    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return QuietServer(config)
