"""Make the app's connections take turns on the test's one physical connection.

Every app connection's transaction is a SAVEPOINT on that one connection, and
savepoints only work as a stack: ``RELEASE e2e_1`` also releases a later ``e2e_2``.
So a connection may begin only when every connection holding a turn *encloses* it:
was begun by the same task, or by a task it descends from (a streaming body, a task
the route spawned and awaits, a request the route makes through the client). Any
other (another request, a sibling in ``asyncio.gather``) waits until the holders
commit or roll back. "Encloses" is tracked with a context variable,
which child tasks inherit, holding the turns taken along the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

from fastapi_e2e.database.callsite import task_site
from fastapi_e2e.errors import GATE_TIMEOUT, GATE_WAIT_NOTE, SessionGateTimeout


class Holder(Protocol):
    """What takes a turn: one of the app's connections while its savepoint is open."""

    wrote: bool
    """Its savepoint wrote, or a statement in it failed: it must roll back, not release."""
    nested: bool
    """Another connection's savepoint was opened inside its own."""


DEFAULT_TIMEOUT = 10.0


class Request:
    """Identifies one request the client made, and the test (its gate) it belongs to."""

    __slots__ = ("gate", "owner")

    def __init__(self, gate: SessionGate | None, owner: object = None) -> None:
        self.gate = gate
        self.owner = owner
        """The test's transaction (or commits-mode database) the request belongs to;
        None between tests. A task the request left running still carries it."""


REQUEST_TOKEN: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "fastapi_e2e_request", default=None
)
"""Set for the duration of each request the client makes (and in tasks it spawns)."""

APP_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("fastapi_e2e_app", default=False)
"""True while the app's modules are imported by the harness, the app is built, in its
lifespan and in requests (and tasks they spawn): raw connections made there are the
app's; those the test code makes itself to the test database are the test's."""


@contextlib.contextmanager
def app_code() -> Iterator[None]:
    """Mark what runs inside as the app's code (see APP_CODE)."""
    token = APP_CODE.set(True)
    try:
        yield
    finally:
        APP_CODE.reset(token)


_HELD: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "fastapi_e2e_held", default=()
)

_READ_PREFIXES = ("SELECT", "SHOW", "VALUES", "EXPLAIN")


class _Turn:
    """One connection's turn: who took it, for which request, from which task."""

    __slots__ = ("holder", "request", "task")

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.request = REQUEST_TOKEN.get()
        self.task = asyncio.current_task()


class SessionGate:
    """Turns on the shared connection, granted only to connections the holders enclose."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._turns: dict[int, _Turn] = {}  # id(holder) -> turn, in the order taken
        self._changed = asyncio.Event()
        self._cancelled_wait: _Turn | None = None  # what a cancelled waiter waited for

    def holders(self) -> list[Any]:
        """Who holds a turn now, in the order they took it."""
        return [turn.holder for turn in self._turns.values()]

    def holds(self, holder: Holder) -> bool:
        return id(holder) in self._turns

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

    def must_wait(self) -> bool:
        """Whether a holder that does not enclose the caller holds a turn (cheap)."""
        return bool(self._turns) and self._blocker() is not None

    async def acquire(self, holder: Holder) -> None:
        await self.wait_turn()
        self.take(holder)

    def take(self, holder: Holder) -> None:
        """Take a turn now; the caller checked ``must_wait()`` (or waited)."""
        for turn in self._turns.values():
            turn.holder.nested = True
        turn = _Turn(holder)
        self._turns[id(holder)] = turn
        _HELD.set((*_HELD.get(), turn))

    def release(self, holder: Holder) -> None:
        if self._turns.pop(id(holder), None) is not None:
            self._signal()

    def release_request(self, request: object) -> None:
        """Free the turns a finished request left behind (a connection it never returned)."""
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
            turn.holder.wrote = True

    def nest_holders(self) -> None:
        """The test wrote inside the holders' savepoints: rolling one back would undo it."""
        for turn in self._turns.values():
            turn.holder.nested = True

    def describe_wait(self) -> str:
        """A note for a request that timed out, if it was waiting for a turn."""
        blocker, self._cancelled_wait = self._cancelled_wait, None
        if blocker is None:
            return ""
        return GATE_WAIT_NOTE.format(holder=task_site(blocker.task))


class request_scope:
    """Mark the code inside as one request of the test whose gate is given (None
    between tests); the turns it takes are forgotten by the caller's context when it
    ends (requests often run in the test's own task)."""

    def __init__(self, gate: SessionGate | None, owner: object = None) -> None:
        self.gate = gate
        self.owner = owner

    def __enter__(self) -> Request:
        self.request = Request(self.gate, self.owner)
        self._token = REQUEST_TOKEN.set(self.request)
        self._app_code = APP_CODE.set(True)
        self._held = _HELD.set(_HELD.get())
        return self.request

    def __exit__(self, *exc_info: object) -> None:
        _HELD.reset(self._held)
        APP_CODE.reset(self._app_code)
        REQUEST_TOKEN.reset(self._token)
        if self.gate is not None:
            # Turns a request left open (a connection it never returned) die with it.
            self.gate.release_request(self.request)
