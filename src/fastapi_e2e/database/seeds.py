"""Seed groups: rows set up once for a module, class, package or run, seen by each of its tests.

A group holds one connection of the harness's engine with a transaction open across
its tests (or, nested in a wider group, a savepoint on that group's connection). The
seed's rows are written inside it and kept; each test of the group then runs in a
savepoint of its own on the same connection (``TestTransaction(within=group)``),
rolled back after the test, and the group's transaction is rolled back after its
last test.

Why a transaction held open, not rows committed and deleted afterwards: deleting
needs to know every row the seed (and the app's triggers and defaults) wrote, and
committed rows would be visible to other groups of the run meanwhile; a rollback
removes exactly what the group wrote, whatever wrote it, for the cost of a
``ROLLBACK``. Each test pays a ``SAVEPOINT`` and a ``ROLLBACK TO``/``RELEASE``
instead of a ``BEGIN`` and ``ROLLBACK``: the same round trips.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from fastapi_e2e import compat
from fastapi_e2e.compat import run_in_greenlet
from fastapi_e2e.database import wiring
from fastapi_e2e.errors import NO_CURRENT_SESSION, SEED_GROUP_LOST, E2EError

SCOPE_RANKS = {"session": 0, "package": 1, "module": 2, "class": 3}
"""Widest first: a group may only open inside groups of the same or a wider scope."""

_LAYER = "e2e_case"
"""The savepoint of one test (or of the seeding itself) inside a group."""


class SeedGroup:
    """One seed's transaction (or savepoint) on the connection its tests share."""

    def __init__(
        self, engine: AsyncEngine, parent: SeedGroup | None, name: str, scope: str
    ) -> None:
        self.engine: AsyncEngine = parent.engine if parent is not None else engine
        self.parent = parent
        self.name = name
        self.scope = scope
        self.rank = SCOPE_RANKS[scope]
        self.depth: int = parent.depth + 1 if parent is not None else 0
        self.connection: AsyncConnection
        self.lost: str | None = None
        """Why the group's connection was lost mid-group, if it was."""

    async def __aenter__(self) -> SeedGroup:
        if self.parent is not None:
            self.parent.check()
            self.connection = self.parent.connection
            await run_in_greenlet(self._execute, f"SAVEPOINT e2e_group_{self.depth}")
        else:
            self.connection = await self.engine.connect()
            try:
                await self.connection.begin()
            except BaseException:
                await self.connection.close()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        sync = self.connection.sync_connection
        usable = sync is not None and not sync.invalidated and not self.connection.closed
        try:
            if self.parent is not None:
                if usable:
                    await run_in_greenlet(self._undo, f"e2e_group_{self.depth}")
                return
            if usable:
                await self.connection.rollback()
            await self.connection.close()
        finally:
            # DDL the seed ran is undone now: statements prepared since describe it.
            compat.forget_prepared_statements(self.engine.sync_engine.dialect)
            for engine in wiring.app_engines():
                compat.forget_prepared_statements(engine.dialect)

    @property
    def sync_connection(self) -> Connection:
        sync = self.connection.sync_connection
        assert sync is not None
        return sync

    def check(self) -> None:
        """Refuse to go on in a group whose connection an earlier test lost."""
        group: SeedGroup | None = self
        while group is not None:
            sync = group.connection.sync_connection
            if group.lost is None and (
                sync is None or sync.invalidated or not sync.in_transaction()
            ):
                group.lost = "the connection was closed or its transaction ended"
            if group.lost is not None:
                raise E2EError(SEED_GROUP_LOST.format(name=group.name, cause=group.lost))
            group = group.parent

    def begin_layer(self, keep: bool) -> tuple[Connection, SeedLayer]:
        """A test's (``keep=False``) or the seeding's (``keep=True``) savepoint; sync,
        run in SQLAlchemy's greenlet by the test's transaction."""
        self.check()
        self._execute(f"SAVEPOINT {_LAYER}")
        return self.sync_connection, SeedLayer(self, keep)

    def _undo(self, name: str) -> None:
        self._execute(f"ROLLBACK TO SAVEPOINT {name}")
        self._execute(f"RELEASE SAVEPOINT {name}")

    def _execute(self, sql: str) -> None:
        # Straight to the driver: bookkeeping of the harness's, neither recorded nor
        # dispatched to a test (none is current when it runs).
        cursor: Any = self.sync_connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql)
        finally:
            cursor.close()


class SeedLayer:
    """The savepoint a test of a group runs in: rolled back after it, or for the
    seeding itself, released (its rows become the group's)."""

    def __init__(self, group: SeedGroup, keep: bool) -> None:
        self.group = group
        self.keep = keep

    @property
    def is_active(self) -> bool:
        sync = self.group.connection.sync_connection
        return sync is not None and not sync.invalidated and sync.in_transaction()

    def end(self) -> None:
        """Sync: run in SQLAlchemy's greenlet by the test's transaction."""
        if self.group.lost is not None:
            return  # the group's own end undoes it, and says why
        if self.keep:
            self.group._execute(f"RELEASE SAVEPOINT {_LAYER}")
        else:
            self.group._undo(_LAYER)


def current_session() -> AsyncSession:
    """The running test's ``db_session`` (or, inside an ``@seed`` function, the seed's).

    For factories: polyfactory's ``SQLAlchemyFactory`` is bound to it by the run, and a
    factory_boy ``SQLAlchemyModelFactory`` can name it with
    ``sqlalchemy_session_factory = lambda: current_session().sync_session``.
    """
    active = wiring.active()
    if active is None:
        raise E2EError(NO_CURRENT_SESSION.format(what="no run is active"))
    test = active.test
    if test is None:
        if active.commits_session is not None:  # a commits-mode test's own session
            return active.commits_session
        raise E2EError(NO_CURRENT_SESSION.format(what="the run is between tests"))
    return test.session


@contextlib.contextmanager
def polyfactory_bound() -> Iterator[bool]:
    """For the run, polyfactory's ``SQLAlchemyFactory`` persists through the current
    test's session (its ``__async_session__``, called on each ``create_async()``),
    unless the project set one; yields whether it bound it.

    Only when polyfactory is already imported (the test modules that define factories
    were imported at collection): a run without factories does not import it.
    """
    module: Any = sys.modules.get("polyfactory.factories.sqlalchemy_factory")
    factory = getattr(module, "SQLAlchemyFactory", None)
    if factory is None or factory.__dict__.get("__async_session__") is not None:
        yield False
        return
    saved = factory.__dict__.get("__async_session__")
    factory.__async_session__ = current_session
    try:
        yield True
    finally:
        factory.__async_session__ = saved
