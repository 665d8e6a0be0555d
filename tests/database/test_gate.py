"""Behaviour 6 (part): sessions on the shared connection take turns; a stuck one times out.

The gate is plain asyncio, so these drive it directly; the 50-request tests in
test_transaction.py cover it end to end on a real connection.
"""

from __future__ import annotations

import asyncio

import pytest

from fastapi_e2e.database.gate import NESTED_KEY, REQUEST_TOKEN, SessionGate
from fastapi_e2e.errors import SessionGateTimeout


class _Session:
    """Stands in for a Session: the gate uses only its identity and info dict."""

    def __init__(self) -> None:
        self.info: dict[str, object] = {}


async def test_second_task_waits_until_the_first_session_ends() -> None:
    gate = SessionGate(timeout=5)
    first, second = _Session(), _Session()
    order: list[str] = []
    await gate.acquire(first)  # type: ignore[arg-type]

    async def other() -> None:
        await gate.acquire(second)  # type: ignore[arg-type]
        order.append("second in")
        gate.release(second)  # type: ignore[arg-type]

    task = asyncio.create_task(other())
    await asyncio.sleep(0.01)
    order.append("first out")
    gate.release(first)  # type: ignore[arg-type]
    await task
    assert order == ["first out", "second in"]


async def test_same_task_reenters_without_waiting() -> None:
    gate = SessionGate(timeout=0.1)
    outer, inner = _Session(), _Session()
    await gate.acquire(outer)  # type: ignore[arg-type]
    await gate.acquire(inner)  # type: ignore[arg-type]
    gate.release(outer)  # type: ignore[arg-type]
    gate.release(inner)  # type: ignore[arg-type]


async def test_tasks_of_one_request_share_the_turn() -> None:
    # A streaming body or asyncio.create_task inside a route runs in a child task;
    # it belongs to the same request and must not wait for the request's own session.
    gate = SessionGate(timeout=0.5)
    route, child = _Session(), _Session()
    REQUEST_TOKEN.set(object())
    await gate.acquire(route)  # type: ignore[arg-type]
    await asyncio.create_task(gate.acquire(child))  # type: ignore[arg-type]
    assert route.info[NESTED_KEY] is True
    gate.release(child)  # type: ignore[arg-type]
    gate.release(route)  # type: ignore[arg-type]


async def test_another_request_waits_even_from_the_same_task() -> None:
    gate = SessionGate(timeout=0.1)
    REQUEST_TOKEN.set(object())
    await gate.acquire(_Session())  # type: ignore[arg-type]
    REQUEST_TOKEN.set(object())
    with pytest.raises(SessionGateTimeout):
        await gate.acquire(_Session())  # type: ignore[arg-type]


async def test_stuck_holder_times_out_naming_where_it_waits() -> None:
    gate = SessionGate(timeout=0.1)
    holder_done = asyncio.Event()

    async def stuck_holder() -> None:
        await gate.acquire(_Session())  # type: ignore[arg-type]
        await holder_done.wait()

    holder = asyncio.create_task(stuck_holder())
    await asyncio.sleep(0)
    with pytest.raises(SessionGateTimeout, match=r"waited 0.1 s.*test_gate.py:\d+ in stuck_holder"):
        await gate.acquire(_Session())  # type: ignore[arg-type]
    holder_done.set()
    await holder
