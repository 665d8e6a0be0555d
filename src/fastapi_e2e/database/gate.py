"""Make sessions on the test's one connection take turns.

All app sessions share one connection, each inside its own SAVEPOINT, and
savepoints only work as a stack: ``RELEASE sa_1`` also releases a later ``sa_2``.
So a session may start only when every session holding a turn *encloses* it: was
opened by the same task, or by a task it descends from (a streaming body, a task
the route spawned and awaits, a request the route makes through the client). Any
other session (another request, a sibling in ``asyncio.gather``) waits until the
holders end their transactions. "Encloses" is tracked with a context variable,
which child tasks inherit, holding the turns taken along the way.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import await_only

from fastapi_e2e.database.callsite import call_site, task_site
from fastapi_e2e.errors import (
    GATE_TIMEOUT,
    GATE_WAIT_NOTE,
    STALE_TASK_SESSION,
    E2EError,
    SessionGateTimeout,
)

GATE_KEY = "fastapi_e2e.gate"
"""Session.info key: this session takes turns at the gate (app sessions)."""
WAIT_KEY = "fastapi_e2e.wait"
"""Session.info key: this session waits for a free turn but never holds one (db_session)."""
WROTE_KEY = "fastapi_e2e.wrote"
"""Session.info key: the session's current transaction wrote, or hit an error."""
NESTED_KEY = "fastapi_e2e.nested"
"""Session.info key: another session started inside this one's transaction."""
DEFAULT_TIMEOUT = 10.0


class Request:
    """Identifies one request the client made, and the test (its gate) it belongs to."""

    __slots__ = ("gate",)

    def __init__(self, gate: SessionGate | None) -> None:
        self.gate = gate


REQUEST_TOKEN: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "fastapi_e2e_request", default=None
)
"""Set for the duration of each request the client makes (and in tasks it spawns)."""

_HELD: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "fastapi_e2e_held", default=()
)

_READ_PREFIXES = ("SELECT", "SHOW", "VALUES", "EXPLAIN")


class _Turn:
    """One session's turn: who took it, for which request, from which task."""

    __slots__ = ("request", "session", "task")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.request = REQUEST_TOKEN.get()
        self.task = asyncio.current_task()


class SessionGate:
    """Turns on the shared connection, granted only to sessions the holders enclose."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._turns: dict[int, _Turn] = {}  # id(session) -> turn, in the order taken
        self._changed = asyncio.Event()
        self._cancelled_wait: _Turn | None = None  # what a cancelled waiter waited for
        self.stale_sessions: list[E2EError] = []  # sessions opened by an earlier test's task

    def holds(self, session: Session) -> bool:
        return id(session) in self._turns

    def _blocker(self) -> _Turn | None:
        """The first holder that does not enclose the current task, if any."""
        enclosing = _HELD.get()
        for turn in self._turns.values():
            if turn not in enclosing:
                return turn
        return None

    async def wait_turn(self) -> None:
        """Wait until every holder encloses the caller (at once if none blocks)."""
        if self._blocker() is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while (blocker := self._blocker()) is not None:
            remaining = deadline - loop.time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(remaining, 0))
            except asyncio.TimeoutError:
                raise SessionGateTimeout(
                    GATE_TIMEOUT.format(timeout=self.timeout, holder=task_site(blocker.task))
                ) from None
            except asyncio.CancelledError:
                # The request gave up (the client's timeout): keep what it waited for.
                self._cancelled_wait = blocker
                raise

    async def acquire(self, session: Session) -> None:
        await self.wait_turn()
        for turn in self._turns.values():
            turn.session.info[NESTED_KEY] = True
        turn = _Turn(session)
        self._turns[id(session)] = turn
        _HELD.set((*_HELD.get(), turn))

    def release(self, session: Session) -> None:
        if self._turns.pop(id(session), None) is not None:
            self._signal()

    def release_request(self, request: object) -> None:
        """Free the turns a finished request left behind (a session whose close failed)."""
        left = [key for key, turn in self._turns.items() if turn.request is request]
        for key in left:
            del self._turns[key]
        if left:
            self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def taint_holders(self) -> None:
        """A statement failed: every open transaction of the holders must roll back."""
        for turn in self._turns.values():
            turn.session.info[WROTE_KEY] = True

    def describe_wait(self) -> str:
        """A note for a request that timed out, if it was waiting for a turn."""
        blocker, self._cancelled_wait = self._cancelled_wait, None
        if blocker is None:
            return ""
        return GATE_WAIT_NOTE.format(holder=task_site(blocker.task))


def _reads_only(state: ORMExecuteState) -> bool:
    if state.is_select:
        return True
    statement = state.statement
    if isinstance(statement, TextClause):
        return statement.text.lstrip()[:7].upper().startswith(_READ_PREFIXES)
    return False


def _refuse_stale_task(gate: SessionGate) -> None:
    """Stop a session opened by a task that a request of an earlier test left running."""
    request = REQUEST_TOKEN.get()
    if request is not None and request.gate is not None and request.gate is not gate:
        error = E2EError(STALE_TASK_SESSION.format(site=call_site()))
        gate.stale_sessions.append(error)
        raise error


def _enter(session: Session) -> None:
    info = session.info
    gate = info.get(GATE_KEY)
    # These events fire inside SQLAlchemy's greenlet, before the session's statement
    # (and its SAVEPOINT), so waiting here keeps savepoints properly nested.
    if isinstance(gate, SessionGate):
        if not gate.holds(session):
            _refuse_stale_task(gate)
            await_only(gate.acquire(session))
    elif isinstance(waiter := info.get(WAIT_KEY), SessionGate):
        await_only(waiter.wait_turn())


def _on_execute(state: ORMExecuteState) -> None:
    _enter(state.session)
    if GATE_KEY in state.session.info and not _reads_only(state):
        state.session.info[WROTE_KEY] = True


def _on_flush(session: Session, flush_context: Any, instances: Any) -> None:
    _enter(session)


def _after_flush(session: Session, flush_context: Any) -> None:
    if GATE_KEY in session.info:
        session.info[WROTE_KEY] = True


def _before_commit(session: Session) -> None:
    # db_session releasing its savepoint mid-request would release the request's too.
    waiter = session.info.get(WAIT_KEY)
    if isinstance(waiter, SessionGate):
        await_only(waiter.wait_turn())


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    info = session.info
    info.pop(WROTE_KEY, None)
    info.pop(NESTED_KEY, None)
    gate = info.get(GATE_KEY)
    if isinstance(gate, SessionGate):
        gate.release(session)


def install() -> None:
    """Register the gate's session events once per process (idempotent)."""
    if not event.contains(Session, "do_orm_execute", _on_execute):
        event.listen(Session, "do_orm_execute", _on_execute)
        event.listen(Session, "before_flush", _on_flush)
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_transaction_end", _on_transaction_end)


class request_scope:
    """Mark the code inside as one request of the test whose gate is given (None
    between tests); the turns it takes are forgotten by the caller's context when it
    ends (requests often run in the test's own task)."""

    def __init__(self, gate: SessionGate | None) -> None:
        self.gate = gate

    def __enter__(self) -> Request:
        self.request = Request(self.gate)
        self._token = REQUEST_TOKEN.set(self.request)
        self._held = _HELD.set(_HELD.get())
        return self.request

    def __exit__(self, *exc_info: object) -> None:
        _HELD.reset(self._held)
        REQUEST_TOKEN.reset(self._token)
        if self.gate is not None:
            # Turns a request left open (a session whose close failed) die with it.
            self.gate.release_request(self.request)
