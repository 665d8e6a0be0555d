"""Make sessions on the test's one connection take turns.

All request sessions share one connection, each inside its own SAVEPOINT. If two
requests ran at once, their savepoints would interleave (``RELEASE sa_1`` also
releases ``sa_2``) and SQLAlchemy's transaction bookkeeping would break, so a session
waits for the gate before its first statement and frees it when its transaction
ends. The gate is re-entrant per asyncio task: a route that opens a second session
while holding the first (a service using a module-level sessionmaker) does not wait
for itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only

from fastapi_e2e.database.callsite import task_site
from fastapi_e2e.errors import GATE_TIMEOUT, SessionGateTimeout

GATE_KEY = "fastapi_e2e.gate"
DEFAULT_TIMEOUT = 10.0


class SessionGate:
    """A task-re-entrant turn on the shared connection, held per session."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._owner: asyncio.Task[Any] | None = None
        self._holders: set[int] = set()  # id() of the sessions holding the gate
        self._free = asyncio.Event()
        self._free.set()

    def holds(self, session: Session) -> bool:
        return id(session) in self._holders

    async def acquire(self, session: Session) -> None:
        task = asyncio.current_task()
        while self._owner is not None and self._owner is not task:
            try:
                await asyncio.wait_for(self._free.wait(), self.timeout)
            except asyncio.TimeoutError:
                raise SessionGateTimeout(
                    GATE_TIMEOUT.format(timeout=self.timeout, holder=task_site(self._owner))
                ) from None
        self._owner = task
        self._free.clear()
        self._holders.add(id(session))

    def release(self, session: Session) -> None:
        if id(session) not in self._holders:
            return
        self._holders.discard(id(session))
        if not self._holders:
            self._owner = None
            self._free.set()


def _gate_of(session: Session) -> SessionGate | None:
    gate = session.info.get(GATE_KEY)
    return gate if isinstance(gate, SessionGate) else None


def _enter(session: Session) -> None:
    gate = _gate_of(session)
    if gate is not None and not gate.holds(session):
        # These events fire inside SQLAlchemy's greenlet, before the session's first
        # statement (and its SAVEPOINT), so waiting here keeps savepoints nested.
        await_only(gate.acquire(session))


def _on_execute(state: Any) -> None:
    _enter(state.session)


def _on_flush(session: Session, flush_context: Any, instances: Any) -> None:
    _enter(session)


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        gate = _gate_of(session)
        if gate is not None:
            gate.release(session)


def install() -> None:
    """Register the gate's session events once per process (idempotent)."""
    if not event.contains(Session, "do_orm_execute", _on_execute):
        event.listen(Session, "do_orm_execute", _on_execute)
        event.listen(Session, "before_flush", _on_flush)
        event.listen(Session, "after_transaction_end", _on_transaction_end)
