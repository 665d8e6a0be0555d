"""Connections for commits-mode databases, opened before their test and closed after it,
both off the test's path.

A new database needs new server connections, and opening one (a server process
started, its catalog caches filled) and closing it again cost milliseconds each: more
than handing out the database itself. ``WarmConnections.connect_for(driver)`` is the
driver-level connect the wiring gives the wired engines (asyncpg, psycopg's async
connection) while a commits-mode test runs (``compat.open_with``). It remembers how
many connections each engine opened in the last such test and with which arguments;
the pool opens as many to each database it makes (``prepare``), reads each table once
through them, and the next test's engines are handed those. Every connection it hands
out is tracked by database, so when the test ends the pool closes them all
(``close``) before dropping the database, while the next test runs.

Why not a driver's own pool (asyncpg's ``Pool``, psycopg_pool): a pool serves one
database and hands out connections to callers who give them back; here each
database lives for one test, its connections go into SQLAlchemy's pools (which let
go of them without closing: ``dispose(close=False)``), and what is needed is "the
same connections again, on the next database".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi_e2e import compat
from fastapi_e2e.database.callsite import call_site
from fastapi_e2e.errors import STALE_TASK_SESSION, E2EError

MAX_PER_ENGINE = 4
"""Never more connections opened ahead per engine (and database) than this."""
CLOSE_TIMEOUT = 2.0
WARM_UP_TIMEOUT = 5.0
WARM_UP_LIMITS = "SET LOCAL lock_timeout = '200ms'; SET LOCAL statement_timeout = '2s'"
WARM_UP_QUERY = """
SELECT format('SELECT FROM %I.%I LIMIT 0', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY c.oid
LIMIT 200
"""


class _Asyncpg:
    database_key = "database"

    @staticmethod
    def connect() -> Callable[..., Awaitable[Any]]:
        # Past the run's guard on raw connections: these are the wired engines'.
        return compat.original_asyncpg_connect()  # type: ignore[no-any-return]

    @staticmethod
    def is_closed(connection: Any) -> bool:
        return bool(connection.is_closed())

    @staticmethod
    def abort(connection: Any) -> None:
        connection.terminate()

    @staticmethod
    async def read_names(connection: Any, query: str) -> list[str]:
        return [row[0] for row in await connection.fetch(query)]

    @staticmethod
    async def run(connection: Any, script: str) -> None:
        await connection.execute(script)  # no arguments: one simple-protocol round trip


class _Psycopg:
    database_key = "dbname"

    @staticmethod
    def connect() -> Callable[..., Awaitable[Any]]:
        import psycopg

        return psycopg.AsyncConnection.connect

    @staticmethod
    def is_closed(connection: Any) -> bool:
        return bool(connection.closed)

    @staticmethod
    def abort(connection: Any) -> None:
        connection.pgconn.finish()

    @staticmethod
    async def read_names(connection: Any, query: str) -> list[str]:
        try:
            cursor = await connection.execute(query)
            return [row[0] for row in await cursor.fetchall()]
        finally:
            await connection.rollback()  # handed over idle, as a new connection is

    @staticmethod
    async def run(connection: Any, script: str) -> None:
        try:
            await connection.execute(script)
        finally:
            await connection.rollback()


_DRIVERS: dict[str, type[_Asyncpg] | type[_Psycopg]] = {"asyncpg": _Asyncpg, "psycopg": _Psycopg}


class WarmConnections:
    """The connect of commits-mode tests' wired engines, and their connections by database."""

    def __init__(self) -> None:
        self._ready: dict[str, dict[str, list[Any]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        """Per database, per shape: connections opened ahead, not handed out yet."""
        self._opened: dict[str, list[tuple[Any, Any]]] = collections.defaultdict(list)
        """Per database: every connection opened to it and not closed yet (and its driver)."""
        self._shapes: dict[str, tuple[Any, dict[str, Any]]] = {}
        """Per shape: the driver and its connect arguments but the database."""
        self._demand: dict[str, int] = {}
        """Per shape: how many to open ahead (what the last test opened)."""
        self._this_test: collections.Counter[str] = collections.Counter()
        self.demand_grew: Callable[[], None] = lambda: None
        """Called when a test opened more connections than the ready databases have."""
        self._warm_up: str | None = None
        """The statements that warm a new connection up (None: not read yet)."""
        self._finished: set[str] = set()
        """Databases whose connections were closed: none may be opened to them again."""
        self._given_up: set[str] = set()
        """Databases whose connections could not be opened ahead."""
        # What the run summary reports.
        self.handed_ahead = 0
        self.opened_on_demand = 0
        self.not_opened_ahead = 0
        self.warm_up_failed: str | None = None
        """Why the warm-up was turned off, if it was."""

    def connect_for(self, driver: str, is_async: bool) -> Callable[..., Awaitable[Any]] | None:
        """The connect to give an engine of ``driver`` (None: one this module cannot
        open ahead, such as a sync driver's, which keeps connecting for itself)."""
        kind = _DRIVERS.get(driver) if is_async else None
        if kind is None:
            return None

        async def connect(*args: Any, **kwargs: Any) -> Any:
            return await self._open(kind, args, kwargs)

        return connect

    async def _open(self, kind: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A connection with the driver's ``kwargs``: one opened ahead if there is one."""
        database = str(kwargs.get(kind.database_key))
        if database in self._finished:
            raise E2EError(STALE_TASK_SESSION.format(site=call_site()))
        rest = {k: v for k, v in kwargs.items() if k != kind.database_key}
        shape = f"{kind.__name__} {sorted(rest.items(), key=str)!r}"
        self._shapes[shape] = (kind, rest)
        self._this_test[shape] += 1
        if self._this_test[shape] > self._demand.get(shape, 0):
            # More than the databases being readied get: they get as many (the
            # next test comes a millisecond after this one ends, too late to learn).
            self._demand[shape] = min(self._this_test[shape], MAX_PER_ENGINE)
            self.demand_grew()
        ready = self._ready.get(database, {}).get(shape)
        while ready and not args:
            connection = ready.pop(0)
            if not kind.is_closed(connection):  # not ended by the server meanwhile
                self.handed_ahead += 1
                return connection
        connection = await kind.connect()(*args, **kwargs)
        if database in self._finished:  # its test ended while it connected
            await _close(kind, connection)
            raise E2EError(STALE_TASK_SESSION.format(site=call_site()))
        self._opened[database].append((kind, connection))
        self.opened_on_demand += 1
        return connection

    def test_ended(self) -> None:
        """The next databases get as many connections, per engine, as this test opened
        (fewer too: a test that needed many does not make every later one pay)."""
        self._demand = {
            shape: min(count, MAX_PER_ENGINE) for shape, count in self._this_test.items()
        }
        self._this_test.clear()
        # An engine made per test brings a new shape each time (psycopg's adapters map
        # is in its arguments): forget those no test asks for any more.
        self._shapes = {shape: self._shapes[shape] for shape in self._demand}

    def lacks(self, database: str) -> bool:
        """Whether ``database`` has fewer connections opened ahead than the last test used."""
        if database in self._given_up or database in self._finished:
            return False
        ready = self._ready[database]
        return any(len(ready[shape]) < count for shape, count in self._demand.items())

    async def prepare(self, database: str, wanted: Callable[[], bool]) -> None:
        """Open the connections the next test on ``database`` will ask for, while
        ``wanted()`` (its test has not taken it yet). One that cannot be opened is the
        test's to open (and to report why it cannot)."""
        try:
            for shape, count in list(self._demand.items()):
                if shape not in self._shapes:
                    continue  # forgotten at a test's end while this one was opening
                kind, rest = self._shapes[shape]
                while len(self._ready[database][shape]) < count and wanted():
                    connection = await kind.connect()(**rest, **{kind.database_key: database})
                    # Not tracked until warmed: close() must not close it mid-statement.
                    try:
                        await self._warm(kind, connection)
                    except BaseException:
                        kind.abort(connection)
                        raise
                    if kind.is_closed(connection):
                        raise ConnectionError(f"a connection to {database} closed at once")
                    if database in self._finished:  # its test came and went meanwhile
                        await _close(kind, connection)
                        return
                    self._opened[database].append((kind, connection))
                    self._ready[database][shape].append(connection)
        except Exception:
            self._given_up.add(database)
            self.not_opened_ahead += 1

    async def _warm(self, kind: Any, connection: Any) -> None:
        """Have the server process load the schema's tables once, now, rather than in
        the test's first statements (about a millisecond): a ``LIMIT 0`` read of each
        (the first 200), waiting for no lock."""
        try:
            if self._warm_up is None:
                names = await kind.read_names(connection, WARM_UP_QUERY)
                self._warm_up = ";".join([WARM_UP_LIMITS, *names]) if names else ""
            if self._warm_up:
                await asyncio.wait_for(kind.run(connection, self._warm_up), WARM_UP_TIMEOUT)
        except (Exception, asyncio.TimeoutError) as exc:
            # A view it may not read: only a head start is lost, for the rest of the run.
            self._warm_up = ""
            self.warm_up_failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if kind.is_closed(connection) or isinstance(exc, asyncio.TimeoutError):
                raise

    async def close(self, database: str) -> None:
        """Close every connection opened to ``database`` (nothing may use them now)."""
        self._finished.add(database)
        self._ready.pop(database, None)
        self._given_up.discard(database)
        for kind, connection in self._opened.pop(database, []):
            await _close(kind, connection)

    @property
    def databases(self) -> list[str]:
        """The databases that still have connections open."""
        return list(self._opened)


async def _close(kind: Any, connection: Any) -> None:
    """Close ``connection`` (asyncpg waits for the server to end its process), or drop
    it if that hangs."""
    if kind.is_closed(connection):
        return
    try:
        await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT)
    except (Exception, asyncio.TimeoutError):
        with contextlib.suppress(Exception):
            kind.abort(connection)
