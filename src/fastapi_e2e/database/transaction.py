"""One connection and one outer transaction per test, shared by the test and the app.

Every session the harness hands out (``db_session``, the overridden dependency's,
the rebound sessionmakers') joins the outer transaction with
``join_transaction_mode="create_savepoint"``: a ``commit()`` releases a savepoint
and a ``rollback()`` returns to it, so neither can end the test's transaction. On
exit the outer transaction is rolled back and nothing the test did remains.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext, Transaction
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncTransaction,
    async_sessionmaker,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.session import JoinTransactionMode
from sqlalchemy.util import greenlet_spawn

from fastapi_e2e.database import gate as gate_module
from fastapi_e2e.database.gate import GATE_KEY, NESTED_KEY, WAIT_KEY, WROTE_KEY, SessionGate
from fastapi_e2e.errors import (
    OUTER_TRANSACTION_ENDED,
    SAVEPOINT_OUT_OF_ORDER,
    TEARDOWN_ROLLBACK_FAILED,
    E2EError,
)

# App commits become RELEASE SAVEPOINT, app rollbacks ROLLBACK TO SAVEPOINT.
JOIN_MODE: JoinTransactionMode = "create_savepoint"
FRESH_READS_KEY = "fastapi_e2e.fresh_reads"
OUTER_LOCK_KEY = "fastapi_e2e.outer_transaction"
SAVEPOINTS_KEY = "fastapi_e2e.savepoints"
_NO_PARAMETERS = inspect.Signature()
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
    global _session_events_installed
    if _session_events_installed:
        return
    gate_module.install()
    if not event.contains(Session, "do_orm_execute", _refresh_on_select):
        event.listen(Session, "do_orm_execute", _refresh_on_select)
    _session_events_installed = True


_session_events_installed = False


class TestSession(AsyncSession):
    """The test's own session (``db_session``): its reads always show the database.

    A SELECT refreshes objects it already holds (an event sets populate_existing), and
    ``get()`` queries even when the object is in its identity map: the app changes rows
    behind its back, and the test asserts on what the database holds.
    """

    __test__ = False

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("populate_existing", True)
        return await super().get(*args, **kwargs)


class SharedConnectionSession(AsyncSession):
    """An app session on the shared connection that closes the way production would.

    In production each session has its own connection, so closing one never undoes
    another's commit. Here a session's savepoint may enclose the released savepoint
    of a session started inside it (a background task's audit write after the route
    re-read a row): rolling the outer one back would discard that commit. Only in
    that case, and only when the closing session neither wrote nor hit an error in
    its transaction, its savepoint is released instead: the same outcome for its own
    data, and the inner session's commit stays. Its turn at the gate is freed even
    if closing fails, so other sessions never wait for a broken one.
    """

    async def close(self) -> None:
        info = self.info
        try:
            if (
                info.get(NESTED_KEY)
                and not info.get(WROTE_KEY)
                and self.in_transaction()
                and not (self.new or self.dirty or self.deleted)
            ):
                await self.commit()
        finally:
            try:
                await super().close()
            finally:
                gate = info.get(GATE_KEY)
                if isinstance(gate, SessionGate):
                    gate.release(self.sync_session)


_session_classes: dict[type[AsyncSession], type[AsyncSession]] = {}


def shared_connection_class(cls: type[AsyncSession]) -> type[AsyncSession]:
    """``cls`` with SharedConnectionSession's close(), for a user's custom session class."""
    if issubclass(cls, SharedConnectionSession):
        return cls
    if cls is AsyncSession:
        return SharedConnectionSession
    if cls not in _session_classes:
        _session_classes[cls] = type(cls.__name__, (SharedConnectionSession, cls), {})
    return _session_classes[cls]


# Statements that would end or replace the outer transaction if sent as raw SQL,
# after any leading whitespace and comments.
_TRANSACTION_CONTROL = re.compile(
    r"(?:\s+|--[^\n]*|/\*.*?\*/)*"
    r"(COMMIT|END|ABORT|BEGIN|START\s+TRANSACTION|PREPARE\s+TRANSACTION"
    r"|ROLLBACK(?!\s+(TO|PREPARED)\b))\b",
    re.IGNORECASE | re.DOTALL,
)
_SAVEPOINT_STATEMENT = re.compile(
    r"\s*(SAVEPOINT|RELEASE\s+(?:SAVEPOINT\s+)?|ROLLBACK\s+TO\s+(?:SAVEPOINT\s+)?)\s*(\w+)",
    re.IGNORECASE,
)


def _locked_info(conn: Connection) -> dict[Any, Any] | None:
    """The connection's info if it is a test's connection mid-test, else None."""
    if conn.invalidated:
        return None
    info = conn.info
    return info if info.get(OUTER_LOCK_KEY) else None


def _refuse_outer_end(conn: Connection, *args: Any) -> None:
    """Stop a COMMIT or ROLLBACK of the outer transaction before it reaches the server.

    A commit would persist the test's writes; a rollback would silently end the
    isolation every later statement of the test relies on.
    """
    if _locked_info(conn) is not None:
        raise E2EError(OUTER_TRANSACTION_ENDED)


def _check_statement(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
    """Refuse raw transaction control, and savepoints ended out of order."""
    info = _locked_info(conn)
    if info is None:
        return
    if _TRANSACTION_CONTROL.match(statement):
        raise E2EError(OUTER_TRANSACTION_ENDED)
    match = _SAVEPOINT_STATEMENT.match(statement)
    if match is None:
        return
    verb, name = match.group(1).split()[0].upper(), match.group(2)
    stack: list[str] = info.setdefault(SAVEPOINTS_KEY, [])
    if verb == "SAVEPOINT":
        stack.append(name)
        return
    if name not in stack:
        return  # not one we saw begin: leave it to the server
    if stack[-1] != name:
        action = "release" if verb == "RELEASE" else "roll back to"
        inner = ", ".join(stack[stack.index(name) + 1 :])
        raise E2EError(SAVEPOINT_OUT_OF_ORDER.format(action=action, name=name, inner=inner))
    # After RELEASE the savepoint is gone; after ROLLBACK TO, SQLAlchemy never uses
    # it again, and releasing its parent releases it too.
    del stack[stack.index(name) :]


def _taint_on_error(context: ExceptionContext) -> None:
    """A failed statement aborts the savepoint: its sessions must roll back, not release."""
    connection = context.connection
    if connection is None or connection.invalidated:
        return
    gate = connection.info.get(GATE_KEY)
    if isinstance(gate, SessionGate):
        gate.taint_holders()


def guard_outer_transaction(engine: AsyncEngine) -> None:
    """Install the harness engine's listeners (idempotent)."""
    sync_engine = engine.sync_engine
    # A marker attribute, not event.contains(): that costs ~50 µs, and runs per test.
    if not getattr(sync_engine, "_e2e_guarded", False):
        sync_engine._e2e_guarded = True  # type: ignore[attr-defined]
        event.listen(sync_engine, "commit", _refuse_outer_end)
        event.listen(sync_engine, "rollback", _refuse_outer_end)
        event.listen(sync_engine, "before_cursor_execute", _check_statement)
        event.listen(sync_engine, "handle_error", _taint_on_error)


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
        # The same sessionmaker listed twice (imported under two names) is rebound once.
        self.sessionmakers = list({id(maker): maker for maker in sessionmakers}.values())
        self.app_session_options = dict(app_session_options or {})
        self.gate_timeout = gate_timeout
        self._saved_options: list[tuple[dict[str, Any], type[AsyncSession]]] = []

    async def __aenter__(self) -> SharedTransaction:
        install_events()
        guard_outer_transaction(self.engine)
        self.gate = SessionGate(self.gate_timeout)
        self._sync = await greenlet_spawn(self._connect_and_begin)
        self.connection: AsyncConnection = AsyncConnection(self.engine, self._sync[0])
        self.transaction = AsyncTransaction(self.connection)
        self.transaction.sync_transaction = self._sync[1]
        # Kept: on a broken connection, reaching .info again at teardown would raise.
        self._info = self.connection.sync_connection.info  # type: ignore[union-attr]
        self._info[OUTER_LOCK_KEY] = True
        self._info[GATE_KEY] = self.gate
        self._info[SAVEPOINTS_KEY] = []
        # The test's own session is exempt from the gate: it lives for the whole test,
        # and requests the test awaits (even gathered ones) must not wait for it.
        self.session = TestSession(
            bind=self.connection,
            expire_on_commit=False,
            info={FRESH_READS_KEY: True, WAIT_KEY: self.gate},
            join_transaction_mode=JOIN_MODE,
        )
        self._rebind_sessionmakers()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._restore_sessionmakers()
        self._info[OUTER_LOCK_KEY] = False
        self._info.pop(GATE_KEY, None)
        self._info.pop(SAVEPOINTS_KEY, None)
        if self.connection.closed:
            # The test closed db_connection itself; the rollback that implies was
            # refused (the test failed saying so), and nothing was ever committed.
            return
        if self.connection.sync_connection.invalidated:  # type: ignore[union-attr]
            # Lost mid-test (the server ended it, or a request was cancelled during a
            # query); the test already saw that error, and the server rolled back.
            await self.connection.close()
            return
        # A refused commit leaves the outer transaction inactive but open on the server;
        # closing the DBAPI connection is then the one sure way to discard it.
        discard = not self.transaction.is_active
        try:
            sync_session = self.session.sync_session
            if sync_session.in_transaction() or sync_session.identity_map:
                await self.session.close()  # skipped when unused: it costs a greenlet hop
            if not discard:
                await greenlet_spawn(self._rollback_and_close)
                return
        except Exception as error:
            await self._drop_connection()
            raise E2EError(TEARDOWN_ROLLBACK_FAILED.format(cause=error)) from error
        await self._drop_connection()

    # Each phase in one greenlet hop: the async API's connect(), begin(), rollback()
    # and close() take one each, ~15 µs apiece, on a path that runs for every test.
    def _connect_and_begin(self) -> tuple[Connection, Transaction]:
        connection = self.engine.sync_engine.connect()
        try:
            return connection, connection.begin()
        except BaseException:
            connection.close()
            raise

    def _rollback_and_close(self) -> None:
        connection, transaction = self._sync
        transaction.rollback()
        connection.close()

    async def _drop_connection(self) -> None:
        """Close the DBAPI connection instead of pooling it; the server rolls back."""
        if self.connection.closed:  # returned to the pool after its rollback, then failed
            return
        try:
            await self.connection.invalidate()
        finally:
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
        return SharedConnectionSession(**self._app_session_kwargs())

    def new_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """A sessionmaker for app code whose dependency yields a sessionmaker."""
        return async_sessionmaker(class_=SharedConnectionSession, **self._app_session_kwargs())

    def dependency_override(self, yields_sessionmaker: bool) -> Callable[[], AsyncIterator[Any]]:
        """The replacement for the app's session dependency (or for one that yields a
        sessionmaker) in this test.

        A plain function with its empty signature preset: while any override is set,
        FastAPI reads the signature of every dependency again on every request, and an
        annotated method's costs it ~15 µs more (its string annotations are evaluated).
        """

        async def session_dependency() -> AsyncIterator[AsyncSession]:
            session = self.new_session()
            try:
                yield session
            finally:
                await session.close()

        async def sessionmaker_dependency() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
            yield self.new_sessionmaker()

        override: Callable[[], AsyncIterator[Any]] = (
            sessionmaker_dependency if yields_sessionmaker else session_dependency
        )
        setattr(override, "__signature__", _NO_PARAMETERS)  # noqa: B010 - a function attribute
        return override

    def _rebind_sessionmakers(self) -> None:
        for maker in self.sessionmakers:
            saved = dict(maker.kw)
            self._saved_options.append((saved, maker.class_))
            info = {**(saved.get("info") or {}), GATE_KEY: self.gate}
            maker.kw = {k: v for k, v in saved.items() if k != "binds"}
            maker.configure(bind=self.connection, info=info, join_transaction_mode=JOIN_MODE)
            maker.class_ = shared_connection_class(maker.class_)

    def _restore_sessionmakers(self) -> None:
        for maker, (saved, class_) in zip(self.sessionmakers, self._saved_options, strict=True):
            maker.kw = saved
            maker.class_ = class_
        self._saved_options.clear()
