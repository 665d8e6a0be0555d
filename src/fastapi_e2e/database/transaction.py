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
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncTransaction,
    async_sessionmaker,
)
from sqlalchemy.orm import ORMExecuteState, Session

from fastapi_e2e.database import gate as gate_module
from fastapi_e2e.database.gate import GATE_KEY, SessionGate
from fastapi_e2e.errors import TEARDOWN_ROLLBACK_FAILED, E2EError

JOIN = {"join_transaction_mode": "create_savepoint"}
FRESH_READS_KEY = "fastapi_e2e.fresh_reads"
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


def install_events() -> None:
    """Register the session events the shared transaction relies on (idempotent)."""
    gate_module.install()
    if not event.contains(Session, "do_orm_execute", _refresh_on_select):
        event.listen(Session, "do_orm_execute", _refresh_on_select)


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
        self.gate = SessionGate(self.gate_timeout)
        self.connection: AsyncConnection = await self.engine.connect()
        try:
            self.transaction: AsyncTransaction = await self.connection.begin()
        except BaseException:
            await self.connection.close()
            raise
        # The test's own session is exempt from the gate: it lives for the whole test,
        # and requests the test awaits (even gathered ones) must not wait for it.
        self.session = AsyncSession(
            bind=self.connection, expire_on_commit=False, info={FRESH_READS_KEY: True}, **JOIN
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
        try:
            await self.session.close()
            if self.transaction.is_active:
                await self.transaction.rollback()
        except Exception as error:
            # The connection's state is unknown: drop it rather than pool it.
            await self.connection.invalidate()
            await self.connection.close()
            raise E2EError(TEARDOWN_ROLLBACK_FAILED.format(cause=error)) from error
        await self.connection.close()

    def _app_session_kwargs(self) -> dict[str, Any]:
        return {
            **self.app_session_options,
            **JOIN,
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
            await session.close()

    async def sessionmaker_dependency(self) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
        """Replacement for an app dependency that yields a sessionmaker."""
        yield self.new_sessionmaker()

    def _rebind_sessionmakers(self) -> None:
        for maker in self.sessionmakers:
            saved = dict(maker.kw)
            self._saved_options.append(saved)
            info = {**(saved.get("info") or {}), GATE_KEY: self.gate}
            maker.kw = {k: v for k, v in saved.items() if k != "binds"}
            maker.configure(bind=self.connection, info=info, **JOIN)

    def _restore_sessionmakers(self) -> None:
        for maker, saved in zip(self.sessionmakers, self._saved_options):
            maker.kw = saved
        self._saved_options.clear()

