"""One server connection and one outer transaction per test, shared by the test and the app.

``async with TestTransaction(wiring, engine, make_session) as tx:`` opens the test's
connection on the harness's engine (same driver and options as the app's), begins
the outer transaction and pins the wiring to it. Every app connection's transaction
is then a savepoint on it (``begin``/``commit``/``rollback`` below, called by
``PinnedConnection``), ``tx.session`` is the test's own session, and on exit the
outer transaction is rolled back: nothing the test or the app wrote remains.

This object is where a statement of the test goes: the wiring's listeners call
``before_statement``/``after_statement``/``statement_failed`` on it, so its checks,
its turns at the gate and its recording are all here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Transaction
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from fastapi_e2e import compat
from fastapi_e2e.compat import await_in_greenlet, run_in_greenlet
from fastapi_e2e.database import parity
from fastapi_e2e.database import wiring as wiring_module
from fastapi_e2e.database.callsite import call_site
from fastapi_e2e.database.gate import DEFAULT_TIMEOUT, REQUEST_TOKEN, SessionGate
from fastapi_e2e.database.seeds import SeedGroup, SeedLayer
from fastapi_e2e.diagnosis import record
from fastapi_e2e.errors import (
    DEFERRED_AT_TEST_END,
    DRIVER_MISMATCH,
    FOREIGN_LOOP,
    OUTER_TRANSACTION_ENDED,
    SAVEPOINT_OUT_OF_ORDER,
    STALE_TASK_SESSION,
    TEARDOWN_ROLLBACK_FAILED,
    WRITES_DISCARDED,
    E2EError,
)

if TYPE_CHECKING:
    from fastapi_e2e.database.wiring import PinnedConnection, Wiring

# The test's own session joins with savepoints: its commit() releases one.
JOIN_MODE = "create_savepoint"

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
_READ_PREFIXES = ("SELECT", "SHOW", "VALUES", "EXPLAIN")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _who_ends_the_outer_transaction() -> str:
    """Name the session (and its join mode) whose commit or rollback reached the outer
    transaction, from the callers' frames; only run on this error path."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(60):
        if frame is None:
            break
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, SessionTransaction):
            candidate = candidate.session
        if isinstance(candidate, Session):
            return (
                f"a {type(candidate).__name__} bound to db_connection with "
                f"join_transaction_mode={candidate.join_transaction_mode!r}"
            )
        frame = frame.f_back
    return "db_connection.commit()/rollback()/close() or the connection's own transaction"


def _reads_only(sql: str) -> bool:
    head = sql.lstrip()[:8].upper()
    if head.startswith("WITH"):  # a CTE may hide a data-modifying statement
        upper = sql.upper()
        return not any(verb in upper for verb in ("INSERT", "UPDATE", "DELETE", "MERGE"))
    return head.startswith(_READ_PREFIXES)


class TestTransaction:
    """The test's connection, outer transaction, savepoints, gate and recording."""

    __test__ = False

    def __init__(
        self,
        wiring: Wiring,
        engine: AsyncEngine,
        make_session: Callable[..., AsyncSession],
        *,
        recording: record.Recording | None = None,
        gate_timeout: float = DEFAULT_TIMEOUT,
        check_deferred: bool = False,
        deferrable: bool = True,
        app_role: str | None = None,
        within: SeedGroup | None = None,
        keep: bool = False,
    ) -> None:
        self.wiring = wiring
        self.within = within
        """The seed group whose connection this test shares (a savepoint of it is the
        test's outer transaction), if any; ``keep``: the seeding itself, kept."""
        self.keep = keep
        self.engine = engine
        self.make_session = make_session
        self.recording = recording
        self.gate = SessionGate(gate_timeout)
        self.stale: list[E2EError] = []
        """Work refused because a task of an earlier test started it."""
        self._savepoints: list[str] = []
        self._repairs: list[str] = []
        """Savepoints of connections abandoned mid-transaction (cancelled, terminated):
        rolled back before the next statement on the test's connection."""
        self._count = 0
        self._pending: record.Statement | None = None
        self.check_deferred_option = check_deferred
        self.check_deferred = check_deferred and deferrable
        """Check deferred constraints at the app's commits and the test's end: on
        unless turned off, or the schema has no deferrable constraint (until DDL)."""
        self.app_role = app_role
        """The role the app's savepoints run as (None: the harness's own)."""
        self.test_role = "none"
        """The role the test's own statements run as (its SET ROLE), put back after
        each savepoint of the app."""
        self.test_wrote = False
        self.ran_ddl = False
        self.took_advisory_lock = False
        self._check_at_end = False
        self._deferred_error: BaseException | None = None

    async def __aenter__(self) -> TestTransaction:
        self.loop = asyncio.get_running_loop()
        sync_connection, self._outer = await run_in_greenlet(self._connect_and_begin)
        # AsyncConnection's documented constructor, around the connection just made.
        self.connection = AsyncConnection(self.engine, sync_connection)
        self.root: PinnedConnection = sync_connection.connection.dbapi_connection  # type: ignore[assignment]
        self.physical = self.root.own
        self.wiring.test = self
        self.session = self.make_session(bind=self.connection, join_transaction_mode=JOIN_MODE)
        return self

    def _connect_and_begin(self) -> tuple[Connection, Transaction | SeedLayer]:
        if self.within is not None:
            return self.within.begin_layer(self.keep)
        # One greenlet hop for both: the async API takes one each (~15 µs apiece).
        connection = self.engine.sync_engine.connect()
        try:
            return connection, connection.begin()
        except BaseException:
            connection.close()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self.wiring.test = None
        holders = self.gate.holders()
        for holder in holders:
            holder.forget_test()  # their savepoints go with the outer rollback
        # An app savepoint left open never committed: what it wrote is not the test's.
        self._check_at_end = self.test_wrote and self.check_deferred and not holders
        connection = self.connection
        if connection.closed:
            # The test closed db_connection itself; the rollback that implies was
            # refused (the test failed saying so), and nothing was ever committed.
            return
        sync = connection.sync_connection
        if sync is None or sync.invalidated:
            # Lost mid-test (the server ended it, or a request was cancelled during a
            # query); the test already saw that error, and the server rolled back.
            await connection.close()
            return
        # A refused commit leaves the outer transaction inactive but open on the server;
        # closing the DBAPI connection is then the one sure way to discard it.
        discard = not self._outer.is_active
        try:
            if self._check_at_end and not discard:
                # Before the session's close rolls back what it flushed.
                self._deferred_error = await run_in_greenlet(self._check_test_rows)
            session = self.session.sync_session
            if session.in_transaction() or session.identity_map:
                await self.session.close()  # skipped when unused: it costs a greenlet hop
            if not discard:
                await run_in_greenlet(self._rollback_and_close)
        except Exception as error:
            await self._drop_connection()
            raise E2EError(TEARDOWN_ROLLBACK_FAILED.format(cause=error)) from error
        if discard:
            await self._drop_connection()
        self._after_rollback()

    def _rollback_and_close(self) -> None:
        outer = self._outer
        if isinstance(outer, SeedLayer):
            outer.end()  # the group's connection stays open for its next test
            if self.took_advisory_lock:  # after the savepoint's rollback: a healthy state
                with contextlib.suppress(Exception):
                    self._execute(parity.UNLOCK_ADVISORY, recorded=False)
            return
        # One greenlet hop for all: the async API takes one each (~15 µs apiece).
        drop = False
        if self.took_advisory_lock:
            try:  # session locks outlive the rollback: the next test would find them taken
                self._execute(parity.UNLOCK_ADVISORY, recorded=False)
            except Exception:  # an aborted transaction: the server frees a closed session's
                drop = True
        outer.rollback()
        if drop:
            outer.connection.invalidate()
        outer.connection.close()

    def _check_test_rows(self) -> BaseException | None:
        """The integrity error production's COMMIT would raise for the test's own rows."""
        try:
            self._execute(parity.CHECK_DEFERRED)
        except Exception as error:
            if str(getattr(error, "sqlstate", "")).startswith("23"):  # integrity violation
                return error
        return None

    def _after_rollback(self) -> None:
        if self.ran_ddl:
            # Statements prepared during the test describe the schema it changed.
            self._forget_prepared_statements()
        error = self._deferred_error
        if error is not None:
            cause = str(error).split("\n", 1)[0]
            detail = getattr(error.__cause__, "detail", None) or getattr(
                getattr(error, "diag", None), "message_detail", None
            )
            if detail:
                cause += f" ({detail})"
            raise E2EError(DEFERRED_AT_TEST_END.format(cause=cause))

    def _forget_prepared_statements(self) -> None:
        compat.forget_prepared_statements(self.engine.sync_engine.dialect)
        for engine in wiring_module.app_engines():
            compat.forget_prepared_statements(engine.dialect)

    async def _drop_connection(self) -> None:
        """Close the DBAPI connection instead of pooling it; the server rolls back."""
        if self.connection.closed:
            return
        try:
            await self.connection.invalidate()
        finally:
            await self.connection.close()

    # --- the app's transactions, as savepoints (called by PinnedConnection) --------

    def begin(self, pinned: PinnedConnection) -> None:
        """Start ``pinned``'s transaction: wait for a turn, then open its savepoint."""
        if _running_loop() is not self.loop:
            raise E2EError(
                FOREIGN_LOOP.format(thread=threading.current_thread().name, site=call_site())
            )
        request = REQUEST_TOKEN.get()
        if request is not None and request.owner is not None and request.owner is not self:
            error = E2EError(STALE_TASK_SESSION.format(site=call_site()))
            self.stale.append(error)
            raise error
        if pinned.driver != self.root.driver:
            raise E2EError(
                DRIVER_MISMATCH.format(app=pinned.driver, test=self.root.driver, site=call_site())
            )
        if not self.gate.holds(pinned):
            if self.gate.must_wait():
                await_in_greenlet(self.gate.wait_turn())
            self.gate.take(pinned)
        self._count += 1
        name = f"e2e_{self._count}"
        pinned.test, pinned.savepoint = self, name
        pinned.wrote = pinned.nested = pinned.failed = False
        try:
            self._bookkeeping(f"SAVEPOINT {name}")
            if self.app_role is not None:
                self._execute(parity.set_role(self.app_role))
        except BaseException:
            self._end(pinned)
            raise

    def commit(self, pinned: PinnedConnection) -> None:
        """The app committed: release its savepoint (its writes join the test's).

        A transaction in which a statement failed cannot commit: PostgreSQL's COMMIT
        then rolls back without an error, and so does this.
        """
        try:
            self._check_current(pinned)
            name = pinned.savepoint
            if pinned.failed:
                self._undo(name)
                return
            try:
                if pinned.wrote and self.check_deferred:
                    # Where production's COMMIT checks them, with the error it raises.
                    self._bookkeeping(parity.CHECK_DEFERRED)
                self._bookkeeping(f"RELEASE SAVEPOINT {name}")
            except E2EError:
                raise  # refused before it reached the server: nothing to undo
            except Exception:
                self._undo(name)  # one failed release must not abort the whole test
                raise
            self._restore_after_release(pinned)
        finally:
            self._end(pinned)

    def _restore_after_release(self, pinned: PinnedConnection) -> None:
        """Undo what a COMMIT ends but a RELEASE keeps: the savepoint's SET LOCAL
        settings and its role (a ROLLBACK TO undoes both by itself)."""
        if pinned.saved_settings or self.app_role is not None:
            statement = parity.restore(
                pinned.saved_settings, self.test_role if self.app_role is not None else None
            )
            if statement is not None:
                self._execute(statement)

    def rollback(self, pinned: PinnedConnection) -> None:
        """The app rolled back (or returned the connection): undo its savepoint.

        Production gives each session its own connection, so one session's rollback
        never undoes another's commit. Here a savepoint may enclose the released
        savepoint of a connection begun inside it (a task's audit write while the
        route read), or writes of the test itself: when the outer one neither wrote
        nor failed, releasing it has the same outcome for its own data and keeps
        the inner work.
        """
        try:
            self._check_current(pinned)
            name = pinned.savepoint
            if pinned.nested and not pinned.wrote:
                self._bookkeeping(f"RELEASE SAVEPOINT {name}")
                self._restore_after_release(pinned)
            else:
                if pinned.nested and self.recording is not None:
                    self.recording.notes.append(WRITES_DISCARDED.format(site=call_site()))
                self._undo(name)
        finally:
            self._end(pinned)

    def _undo(self, name: str | None) -> None:
        if name is not None and name in self._savepoints:
            self._bookkeeping(f"ROLLBACK TO SAVEPOINT {name}")
            self._bookkeeping(f"RELEASE SAVEPOINT {name}")

    def abandon(self, pinned: PinnedConnection) -> None:
        """A connection was terminated or closed mid-transaction where no statement can
        run (a cancelled query): its savepoint is undone before the next statement."""
        if pinned.test is self and pinned.savepoint in self._savepoints:
            self._repairs.append(pinned.savepoint)
        pinned.forget_test()
        self.gate.release(pinned)

    def _run_repairs(self) -> None:
        repairs, self._repairs = self._repairs, []
        for name in reversed(repairs):
            if name in self._savepoints:
                self._execute(f"ROLLBACK TO SAVEPOINT {name}")
                self._execute(f"RELEASE SAVEPOINT {name}")

    def _check_current(self, pinned: PinnedConnection) -> None:
        if pinned.test is not self.wiring.test:
            raise E2EError(STALE_TASK_SESSION.format(site=call_site()))

    def _end(self, pinned: PinnedConnection) -> None:
        name = pinned.savepoint
        if name is not None and name in self._savepoints:
            del self._savepoints[self._savepoints.index(name) :]
        pinned.forget_test()
        self.gate.release(pinned)

    def _bookkeeping(self, sql: str) -> None:
        """Run a savepoint statement on the test's connection, recorded like the rest."""
        if self._repairs:
            self._run_repairs()
        self._execute(sql)

    def _execute(self, sql: str, *, recorded: bool = True) -> None:
        self._track_savepoint(sql)  # refused before it reaches the server
        statement = self._record(sql, None, None, False) if recorded else None
        cursor = self.physical.cursor()
        try:
            cursor.execute(sql)
        except BaseException as error:
            if statement is not None:
                record.fail_statement(statement, error)
            raise
        else:
            if statement is not None:
                record.finish_statement(statement, cursor)
        finally:
            cursor.close()

    def refuse_outer_end(self) -> None:
        """db_connection.commit()/rollback() mid-test: refused before it reaches the server."""
        raise E2EError(OUTER_TRANSACTION_ENDED.format(who=_who_ends_the_outer_transaction()))

    # --- every statement of the test (called by the wiring's listeners) ------------

    def before_statement(
        self, pinned: PinnedConnection, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        if _TRANSACTION_CONTROL.match(sql):
            who = f"the raw statement {' '.join(sql.split())[:60]!r}"
            raise E2EError(OUTER_TRANSACTION_ENDED.format(who=who))
        if self._repairs:
            self._run_repairs()
        if pinned.root:
            # The test's own statements wait while a request's savepoint is open:
            # releasing db_session's savepoint then would release the request's too.
            if self.gate.must_wait():
                await_in_greenlet(self.gate.wait_turn())
            if not _reads_only(sql):
                self.gate.nest_holders()  # inside an app savepoint the test code opened
                self.test_wrote = True
                if self.app_role is not None and (role := parity.TEST_ROLE.match(sql)):
                    self.test_role = parity.role_of_statement(role)
        elif not pinned.wrote and not _reads_only(sql):
            pinned.wrote = True
        if parity.DDL.match(sql) is not None:
            self.ran_ddl = True
            self.check_deferred = self.check_deferred_option  # it may add a deferrable one
            self._forget_prepared_statements()
        if parity.SESSION_STATE.search(sql) is not None:
            self._note_session_state(pinned, sql, params)
        self._track_savepoint(sql)
        self._pending = self._record(sql, params, context, many)

    def _note_session_state(self, pinned: PinnedConnection, sql: str, params: Any) -> None:
        """An advisory lock (released at the end), or settings an app savepoint sets:
        their values now are read, to be put back after its RELEASE."""
        if parity.takes_advisory_lock(sql):
            self.took_advisory_lock = True
        if pinned.root or pinned.savepoint is None:
            return
        saved = pinned.saved_settings
        names = [name for name in parity.setting_names(sql, params) if name not in saved]
        if not names:
            return
        cursor = self.physical.cursor()
        try:
            cursor.execute(parity.read_settings(names))
            values = cursor.fetchone()
        finally:
            cursor.close()
        saved.update(zip(names, tuple(values or ()), strict=True))

    def after_statement(self, cursor: Any) -> None:
        statement, self._pending = self._pending, None
        if statement is not None:
            record.finish_statement(statement, cursor)

    def statement_failed(self, pinned: PinnedConnection, error: BaseException) -> None:
        # A failed statement aborts the savepoint: its holders must roll back, not release.
        if pinned.test is self:
            pinned.failed = True
        self.gate.taint_holders()
        statement, self._pending = self._pending, None
        if statement is not None:
            record.fail_statement(statement, error)

    def _record(self, sql: str, params: Any, context: Any, many: bool) -> record.Statement | None:
        if self.recording is None:
            return None
        return record.start_statement(self.recording, sql, params, context, many)

    def _track_savepoint(self, sql: str) -> None:
        """Refuse savepoints ended out of order: that would end the inner ones too."""
        match = _SAVEPOINT_STATEMENT.match(sql)
        if match is None:
            return
        verb, name = match.group(1).split()[0].upper(), match.group(2)
        stack = self._savepoints
        if verb == "SAVEPOINT":
            stack.append(name)
            return
        if name not in stack:
            return  # not one we saw begin: leave it to the server
        # The innermost of that name: db_session and an app connection may both
        # have an "sa_savepoint_1" of SQLAlchemy's.
        where = len(stack) - 1 - stack[::-1].index(name)
        if where != len(stack) - 1:
            action = "release" if verb == "RELEASE" else "roll back to"
            inner = ", ".join(stack[where + 1 :])
            raise E2EError(SAVEPOINT_OUT_OF_ORDER.format(action=action, name=name, inner=inner))
        # After RELEASE the savepoint is gone; after ROLLBACK TO, SQLAlchemy never uses
        # it again, and releasing its parent releases it too.
        del stack[where:]
