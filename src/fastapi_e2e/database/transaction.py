"""One connection and one outer transaction per test, shared by the test and the app.

Every session the harness hands out (``db_session``, the overridden dependency's,
the rebound sessionmakers') joins the outer transaction with
``join_transaction_mode="create_savepoint"``: a ``commit()`` releases a savepoint
and a ``rollback()`` returns to it, so neither can end the test's transaction. On
exit the outer transaction is rolled back and nothing the test did remains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncTransaction,
    async_sessionmaker,
)
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.session import JoinTransactionMode

from fastapi_e2e.database import gate as gate_module
from fastapi_e2e.database.gate import GATE_KEY, SessionGate
from fastapi_e2e.errors import OUTER_TRANSACTION_ENDED, TEARDOWN_ROLLBACK_FAILED, E2EError

# App commits become RELEASE SAVEPOINT, app rollbacks ROLLBACK TO SAVEPOINT.
JOIN_MODE: JoinTransactionMode = "create_savepoint"
FRESH_READS_KEY = "fastapi_e2e.fresh_reads"
OUTER_LOCK_KEY = "fastapi_e2e.outer_transaction"
WROTE_KEY = "fastapi_e2e.wrote"
# Options of the user's sessionmaker that would detach a session from our connection.
_BINDING_OPTIONS = ("bind", "binds", "join_transaction_mode")


def session_options_of(maker: async_sessionmaker[Any] | None) -> dict[str, Any]:
    """The options of ``maker`` worth copying to the sessions we create for the app."""
    if maker is None:
        return {}
    return {k: v for k, v in maker.kw.items() if k not in (*_BINDING_OPTIONS, "info")}


def _refresh_on_select(state: ORMExecuteState) -> None:
    """Make the test's session overwrite cached objects with what a SELECT returns.

    The app changes rows behind the test session's back; without this, selecting a
    row the test loaded earlier would return the stale cached object.
    """
    if state.is_select and state.session.info.get(FRESH_READS_KEY):
        state.update_execution_options(populate_existing=True)


def _note_write_statement(state: ORMExecuteState) -> None:
    if not state.is_select and GATE_KEY in state.session.info:
        state.session.info[WROTE_KEY] = True


def _note_flush(session: Session, flush_context: Any) -> None:
    if GATE_KEY in session.info:
        session.info[WROTE_KEY] = True


def _forget_writes(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(WROTE_KEY, None)


def install_events() -> None:
    """Register the session events the shared transaction relies on (idempotent)."""
    gate_module.install()
    if not event.contains(Session, "do_orm_execute", _refresh_on_select):
        event.listen(Session, "do_orm_execute", _refresh_on_select)
        event.listen(Session, "do_orm_execute", _note_write_statement)
        event.listen(Session, "after_flush", _note_flush)
        event.listen(Session, "after_transaction_end", _forget_writes)


async def close_app_session(session: AsyncSession) -> None:
    """Close a session of the app's the way production would, on the shared connection.

    In production each session has its own connection, so closing one never undoes
    another's commit. Here a session's savepoint may enclose the released savepoint
    of a session opened later in the same task (a background task's audit write
    after the route re-read a row): rolling the outer one back would discard that
    commit. When the closing session wrote nothing in its transaction, releasing
    its savepoint is equivalent for its own data and keeps the other's work.
    """
    if (
        session.in_transaction()
        and not session.info.get(WROTE_KEY)
        and not (session.new or session.dirty or session.deleted)
    ):
        await session.commit()
    await session.close()


def _refuse_outer_end(conn: Connection) -> None:
    """Stop a COMMIT or ROLLBACK of the outer transaction before it reaches the server.

    A commit would persist the test's writes; a rollback would silently end the
    isolation every later statement of the test relies on.
    """
    if conn.info.get(OUTER_LOCK_KEY):
        raise E2EError(OUTER_TRANSACTION_ENDED)


def guard_outer_transaction(engine: AsyncEngine) -> None:
    """Refuse commit()/rollback() on test connections of ``engine`` (idempotent)."""
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "commit", _refuse_outer_end):
        event.listen(sync_engine, "commit", _refuse_outer_end)
        event.listen(sync_engine, "rollback", _refuse_outer_end)


class SharedTransaction:
    """``async with SharedTransaction(engine) as tx:`` a connection in a transaction.

    ``tx.connection`` is the shared connection, ``tx.session`` the test's own session,
    ``tx.new_session()`` makes a session for app code, and the listed sessionmakers
    are rebound to the connection until exit.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sessionmakers: Sequence[async_sessionmaker[Any]] = (),
        app_session_options: Mapping[str, Any] | None = None,
        gate_timeout: float = gate_module.DEFAULT_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.sessionmakers = sessionmakers
        self.app_session_options = dict(app_session_options or {})
        self.gate_timeout = gate_timeout
        self._saved_options: list[dict[str, Any]] = []

    async def __aenter__(self) -> SharedTransaction:
        install_events()
        guard_outer_transaction(self.engine)
        self.gate = SessionGate(self.gate_timeout)
        self.connection: AsyncConnection = await self.engine.connect()
        try:
            self.transaction: AsyncTransaction = await self.connection.begin()
        except BaseException:
            await self.connection.close()
            raise
        self.connection.sync_connection.info[OUTER_LOCK_KEY] = True  # type: ignore[union-attr]
        # The test's own session is exempt from the gate: it lives for the whole test,
        # and requests the test awaits (even gathered ones) must not wait for it.
        self.session = AsyncSession(
            bind=self.connection,
            expire_on_commit=False,
            info={FRESH_READS_KEY: True},
            join_transaction_mode=JOIN_MODE,
        )
        self._rebind_sessionmakers()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore_sessionmakers()
        self.connection.sync_connection.info[OUTER_LOCK_KEY] = False  # type: ignore[union-attr]
        # A refused commit leaves the outer transaction inactive but open on the server;
        # closing the DBAPI connection is then the one sure way to discard it.
        discard = not self.transaction.is_active
        try:
            await self.session.close()
            if not discard:
                await self.transaction.rollback()
        except Exception as error:
            await self.connection.invalidate()
            await self.connection.close()
            raise E2EError(TEARDOWN_ROLLBACK_FAILED.format(cause=error)) from error
        if discard:
            await self.connection.invalidate()
        await self.connection.close()

    def _app_session_kwargs(self) -> dict[str, Any]:
        return {
            **self.app_session_options,
            "join_transaction_mode": JOIN_MODE,
            "bind": self.connection,
            "info": {GATE_KEY: self.gate},
        }

    def new_session(self) -> AsyncSession:
        """A session for app code: joins the test's transaction, takes turns at the gate."""
        return AsyncSession(**self._app_session_kwargs())

    def new_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """A sessionmaker for app code whose dependency yields a sessionmaker."""
        return async_sessionmaker(**self._app_session_kwargs())

    async def session_dependency(self) -> AsyncIterator[AsyncSession]:
        """Replacement for the app's session dependency."""
        session = self.new_session()
        try:
            yield session
        finally:
            await close_app_session(session)

    async def sessionmaker_dependency(self) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        """Replacement for an app dependency that yields a sessionmaker."""
        yield self.new_sessionmaker()

    def _rebind_sessionmakers(self) -> None:
        for maker in self.sessionmakers:
            saved = dict(maker.kw)
            self._saved_options.append(saved)
            info = {**(saved.get("info") or {}), GATE_KEY: self.gate}
            maker.kw = {k: v for k, v in saved.items() if k != "binds"}
            maker.configure(bind=self.connection, info=info, join_transaction_mode=JOIN_MODE)

    def _restore_sessionmakers(self) -> None:
        for maker, saved in zip(self.sessionmakers, self._saved_options, strict=True):
            maker.kw = saved
        self._saved_options.clear()
