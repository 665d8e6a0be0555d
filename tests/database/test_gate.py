"""Connections on the test's one connection take turns; a stuck one times out.

The gate is plain asyncio, so these drive it directly; the 50-request tests in
test_transaction.py cover it end to end on a real connection.
"""

from __future__ import annotations

import asyncio

import pytest

from fastapi_e2e.database.gate import SessionGate, request_scope
from fastapi_e2e.errors import SessionGateTimeout


class _Session:
    """Stands in for a pinned connection: the gate uses its identity and two flags."""

    def __init__(self) -> None:
        self.wrote = False
        self.nested = False


async def test_sibling_tasks_take_turns() -> None:
    # Like asyncio.gather of two requests: neither task encloses the other.
    gate = SessionGate(timeout=5)
    order: list[str] = []
    first_in = asyncio.Event()

    async def first() -> None:
        session = _Session()
        await gate.acquire(session)
        first_in.set()
        await asyncio.sleep(0.02)
        order.append("first out")
        gate.release(session)

    async def second() -> None:
        await first_in.wait()
        session = _Session()
        await gate.acquire(session)
        order.append("second in")
        gate.release(session)

    await asyncio.gather(first(), second())
    assert order == ["first out", "second in"]


async def test_task_spawned_by_a_holder_enters_inside_it() -> None:
    # A streaming body or a task the route awaits: it starts inside the route's turn.
    gate = SessionGate(timeout=0.1)
    route, child = _Session(), _Session()
    await gate.acquire(route)
    await asyncio.create_task(gate.acquire(child))
    assert route.nested is True
    gate.release(child)
    gate.release(route)


async def test_same_task_reenters_without_waiting() -> None:
    gate = SessionGate(timeout=0.1)
    outer, inner = _Session(), _Session()
    await gate.acquire(outer)
    await gate.acquire(inner)
    gate.release(inner)
    gate.release(outer)


async def test_a_later_request_in_the_same_task_does_not_inherit_the_turn() -> None:
    gate = SessionGate(timeout=0.1)
    with request_scope(None):  # None: nothing frees its turns when it ends
        await gate.acquire(_Session())  # left open
    with request_scope(None), pytest.raises(SessionGateTimeout):
        await gate.acquire(_Session())


async def test_turns_a_finished_request_left_open_are_freed() -> None:
    gate = SessionGate(timeout=0.1)
    with request_scope(gate):
        await gate.acquire(_Session())  # left open
    with request_scope(gate):
        await gate.acquire(_Session())


async def test_stuck_holder_times_out_naming_where_it_waits() -> None:
    gate = SessionGate(timeout=0.1)
    holder_in, holder_done = asyncio.Event(), asyncio.Event()

    async def stuck_holder() -> None:
        await gate.acquire(_Session())
        holder_in.set()
        await holder_done.wait()

    holder = asyncio.create_task(stuck_holder())
    await holder_in.wait()
    with pytest.raises(SessionGateTimeout, match=r"waited 0.1 s.*test_gate.py:\d+ in stuck_holder"):
        await gate.acquire(_Session())
    holder_done.set()
    await holder
