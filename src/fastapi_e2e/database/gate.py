"""Make sessions on the test's one connection take turns.

All request sessions share one connection, each inside its own SAVEPOINT. If two
requests ran at once, their savepoints would interleave (``RELEASE sa_1`` also
releases ``sa_2``) and SQLAlchemy's transaction bookkeeping would break, so a
session waits for the gate before its first statement and frees it when its
transaction ends.

The gate belongs to a *request*, not to a task: the ASGI wrapper marks each request
with a token (a context variable, so tasks the request spawns, such as a streaming
response's body or ``asyncio.create_task``, share it), and sessions of the same
request enter without waiting for each other. Outside a request the owner is the
current task.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.util import await_only

from fastapi_e2e.database.callsite import task_site
from fastapi_e2e.errors import GATE_TIMEOUT, SessionGateTimeout

GATE_KEY = "fastapi_e2e.gate"
"""Session.info key: this session takes turns at the gate (app sessions)."""
WAIT_KEY = "fastapi_e2e.wait"
"""Session.info key: this session waits for a free gate but never holds it (db_session)."""
WROTE_KEY = "fastapi_e2e.wrote"
"""Session.info key: the session's current transaction wrote, or hit an error."""
NESTED_KEY = "fastapi_e2e.nested"
"""Session.info key: another session of the same request entered while this one held."""
DEFAULT_TIMEOUT = 10.0

REQUEST_TOKEN: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "fastapi_e2e_request", default=None
)


def _current_owner() -> object:
    token = REQUEST_TOKEN.get()
    return token if token is not None else asyncio.current_task()


class SessionGate:
    """A turn on the shared connection, re-entrant for one request."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._owner: object | None = None
        self._owner_task: asyncio.Task[Any] | None = None
        self._holders: dict[int, Session] = {}
        self._free = asyncio.Event()
        self._free.set()

    def holds(self, session: Session) -> bool:
        return id(session) in self._holders

    async def wait_free(self) -> object:
        """Wait until nobody else holds the gate; return the caller's owner identity."""
        owner = _current_owner()
        while self._owner is not None and self._owner is not owner:
            try:
                await asyncio.wait_for(self._free.wait(), self.timeout)
            except asyncio.TimeoutError:
                raise SessionGateTimeout(
                    GATE_TIMEOUT.format(timeout=self.timeout, holder=task_site(self._owner_task))
                ) from None
        return owner

    async def acquire(self, session: Session) -> None:
        owner = await self.wait_free()
        for holder in self._holders.values():
            holder.info[NESTED_KEY] = True
        self._owner = owner
        self._owner_task = asyncio.current_task()
        self._free.clear()
        self._holders[id(session)] = session

    def release(self, session: Session) -> None:
        if self._holders.pop(id(session), None) is None:
            return
        if not self._holders:
            self._owner = None
            self._owner_task = None
            self._free.set()

    def taint_holders(self) -> None:
        """A statement failed: every open transaction of the holders must roll back."""
        for holder in self._holders.values():
            holder.info[WROTE_KEY] = True


def _enter(session: Session) -> None:
    info = session.info
    gate = info.get(GATE_KEY)
    # These events fire inside SQLAlchemy's greenlet, before the session's statement
    # (and its SAVEPOINT), so waiting here keeps savepoints properly nested.
    if isinstance(gate, SessionGate):
        if not gate.holds(session):
            await_only(gate.acquire(session))
    elif isinstance(waiter := info.get(WAIT_KEY), SessionGate):
        await_only(waiter.wait_free())


def _on_execute(state: ORMExecuteState) -> None:
    _enter(state.session)
    if not state.is_select and GATE_KEY in state.session.info:
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
        await_only(waiter.wait_free())


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
