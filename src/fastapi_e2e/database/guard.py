"""Refuse raw asyncpg connections' statements while a test runs.

A connection from ``asyncpg.connect()`` or ``asyncpg.create_pool()`` is the driver's
own, outside SQLAlchemy: it cannot join the test's transaction, cannot see its rows,
and what it writes would persist. While the run is live such connections are made of
a subclass of the requested connection class (asyncpg's documented
``connection_class`` argument) whose query methods refuse, during a test, before
anything reaches the server, naming the call site. Outside tests (the lifespan) they
work as usual, on the test database like the engines. Only connections the app's code
makes are concerned (its import, build, lifespan and requests); those the test code
makes itself are left as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from fastapi_e2e import compat
from fastapi_e2e.database import wiring
from fastapi_e2e.database.callsite import call_site
from fastapi_e2e.database.gate import APP_CODE, REQUEST_TOKEN
from fastapi_e2e.database.urls import asyncpg_connect_kwargs
from fastapi_e2e.errors import RAW_DRIVER_ESCAPE, ConnectionEscapeError

_QUERY_METHODS = (
    "execute",
    "executemany",
    "prepare",
    "fetch",
    "fetchval",
    "fetchrow",
    "fetchmany",
    "copy_from_table",
    "copy_from_query",
    "copy_to_table",
    "copy_records_to_table",
)


def _refuse_during_test(method: str, connection: Any) -> None:
    active = wiring.active()
    if active is None:
        return
    if active.commits:
        # A commits-mode test's raw connections reach its own database for real; older
        # ones (a pool the lifespan opened) point at the run's and would commit there.
        if getattr(connection, "_e2e_database", None) == active.url.database:
            return
    elif active.test is None and REQUEST_TOKEN.get() is None:
        return
    error = ConnectionEscapeError(RAW_DRIVER_ESCAPE.format(method=method, site=call_site()))
    active.escapes.append(error)
    raise error


def _guarded_method(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_during_test(f"asyncpg Connection.{name}()", self)
        return await original(self, *args, **kwargs)

    return guarded


@functools.cache
def guarded_class(cls: type[asyncpg.Connection]) -> type[asyncpg.Connection]:
    """``cls`` whose query methods refuse while a test runs."""
    methods = {name: _guarded_method(name, getattr(cls, name)) for name in _QUERY_METHODS}
    # _e2e_database: the database it was redirected to (commits mode tells them apart).
    return type(cls.__name__, (cls,), {"__slots__": ("_e2e_database",), **methods})


_TARGET_KWARGS = ("dsn", "host", "port", "user", "password", "database", "passfile", "ssl")


async def _guarded_connect(connect: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not APP_CODE.get():
        # The test code's own connection (to e2e_database_url, or any other server):
        # made on purpose, left as it is.
        return await connect(*args, **kwargs)
    cls = kwargs.get("connection_class", asyncpg.Connection)
    kwargs["connection_class"] = guarded_class(cls)
    active = wiring.active()
    if active is not None:
        # Like the engines: the test database, whatever server the app named.
        args = ()
        kwargs = {k: v for k, v in kwargs.items() if k not in _TARGET_KWARGS}
        kwargs.update(asyncpg_connect_kwargs(active.url))
    connection = await connect(*args, **kwargs)
    connection._e2e_database = active.url.database if active is not None else None
    return connection


@contextmanager
def raw_connections_guarded() -> Iterator[None]:
    """For the run: asyncpg connections made by app code refuse statements in tests."""
    with compat.asyncpg_connect_replaced(_guarded_connect):
        yield
