"""A commits-mode test's world: its own database, where the app and the test commit for real.

``async with OwnDatabase(wiring, url, engine, make_session) as own:`` points every
wired engine (the app's, and the test code's on ``e2e_database_url``) at ``url``,
closing the connections their pools hold to the previous database, so none of them
hands the test a connection to another test's database (new ones come from
``warm``, opened ahead by the pool); ``own.session`` and
``own.connection`` (opened on first use) are on ``engine``, an engine of the
harness's outside the wiring's pinning. On exit the session and connection are
closed, the engines let go of their connections to ``url`` (the pool closes them,
then drops it), and the wiring points back at the run's test database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import Pool, QueuePool

from fastapi_e2e.database import wiring as wiring_module
from fastapi_e2e.database.warm import WarmConnections
from fastapi_e2e.database.wiring import Wiring
from fastapi_e2e.errors import E2EError


async def retarget_engines(wiring: Wiring, url: URL, *, leaving: bool = False) -> None:
    """Send the wired engines' new connections to ``url``, after closing the pooled
    ones (public ``dispose()``): a pool must not hand out a connection to a database
    that is about to be dropped, or to the wrong test's.

    ``leaving`` a commits-mode database, the engines whose connections ``warm.py``
    opened only let go of them first, all at once (the sync ``dispose(close=False)``
    never yields to another task): the pool closes them before the drop, while the
    next test runs."""
    wiring.url = url
    engines = [e for e in wiring_module.engines_to_retarget() if not _holds_nothing(e.pool)]
    let_go = [e for e in engines if leaving and getattr(e.dialect, "e2e_warm", False)]
    for engine in let_go:
        engine.dispose(close=False)
    for engine in engines:
        if engine not in let_go:
            await AsyncEngine(engine).dispose()
    for engine in engines:
        if getattr(engine.dialect, "e2e_role", "") == "app":
            wiring.lift_pool_limit(engine)  # dispose() made a new pool


def _holds_nothing(engine_pool: Pool) -> bool:
    """A queue pool with no connection, in or out (any other kind may hold one)."""
    return (
        isinstance(engine_pool, QueuePool)
        and engine_pool.checkedin() == 0
        and engine_pool.checkedout() == 0
    )


class OwnDatabase:
    """The test's own database, as the wiring's target, with the test's session on it."""

    gate = None
    """No turns to take: every connection is a real one."""

    def __init__(
        self,
        wiring: Wiring,
        url: URL,
        engine: AsyncEngine,
        make_session: Callable[..., AsyncSession],
        warm: WarmConnections | None = None,
    ) -> None:
        self.wiring = wiring
        self.warm = warm
        self.url = url
        self.engine = engine
        self.make_session = make_session
        self.stale: list[E2EError] = []
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> OwnDatabase:
        self._run_url = self.wiring.url
        # Before the engines' old connections are closed (which lets other tasks run):
        # from here on, a new connection is to this database, and from ``warm``.
        self.wiring.commits = True
        self.wiring.warm = self.warm
        try:
            await retarget_engines(self.wiring, self.url)
        except BaseException:
            self.wiring.commits = False
            self.wiring.warm = None
            self.wiring.url = self._run_url
            raise
        self.session = self.make_session(bind=self.engine)
        self.wiring.commits_session = self.session
        self.wiring.owner = self
        return self

    @property
    def connection(self) -> AsyncConnection:
        """The test's own connection (``open_connection()`` first)."""
        assert self._connection is not None, "open_connection() first"
        return self._connection

    async def open_connection(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self.engine.connect()
        return self._connection

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self.session.close()
            if self._connection is not None:
                await self._connection.close()
        finally:
            self.wiring.commits = False
            self.wiring.warm = None
            self.wiring.commits_session = None
            self.wiring.owner = None
            if self.warm is not None:
                self.warm.test_ended()
            await retarget_engines(self.wiring, self._run_url, leaving=True)
