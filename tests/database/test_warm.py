"""WarmConnections on a real server: what it hands out, what it refuses, what it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fastapi_e2e import compat
from fastapi_e2e.database.cluster import EmbeddedCluster
from fastapi_e2e.database.urls import asyncpg_connect_kwargs
from fastapi_e2e.database.warm import WarmConnections
from fastapi_e2e.errors import E2EError


@pytest.fixture
def kwargs(pg_cluster: EmbeddedCluster) -> dict[str, Any]:
    """asyncpg's connect arguments for the outer cluster's ``postgres`` database."""
    return asyncpg_connect_kwargs(pg_cluster.url)


async def _pid(connection: Any) -> int:
    return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def _after_a_test_that_opened(
    count: int, kwargs: dict[str, Any]
) -> tuple[WarmConnections, Callable[..., Awaitable[Any]], list[Any]]:
    """WarmConnections once a commits-mode test opened ``count`` connections on demand."""
    warm = WarmConnections()
    connect = warm.connect_for("asyncpg", is_async=True)
    assert connect is not None
    opened = [await connect(**kwargs) for _ in range(count)]
    warm.test_ended()
    return warm, connect, opened


async def test_the_next_test_gets_the_connections_its_predecessor_used(
    kwargs: dict[str, Any],
) -> None:
    warm, connect, (first,) = await _after_a_test_that_opened(1, kwargs)  # on demand
    assert warm.lacks(kwargs["database"])
    await warm.prepare(kwargs["database"], lambda: True)
    assert not warm.lacks(kwargs["database"])
    ahead = await connect(**kwargs)
    assert ahead is not first
    assert await _pid(ahead) != await _pid(first)
    assert (warm.handed_ahead, warm.opened_on_demand) == (1, 1)
    await warm.close(kwargs["database"])
    assert first.is_closed()
    assert ahead.is_closed()


async def test_a_connection_the_server_ended_is_not_handed_out(kwargs: dict[str, Any]) -> None:
    warm, connect, _ = await _after_a_test_that_opened(1, kwargs)
    await warm.prepare(kwargs["database"], lambda: True)
    admin = await compat.original_asyncpg_connect()(**kwargs)
    try:
        # The one opened ahead is the newest backend but the admin's own.
        victim = await admin.fetchval(
            "SELECT max(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND datname = current_database()"
        )
        await admin.execute("SELECT pg_terminate_backend($1)", victim)
        for _ in range(100):  # until it is gone, and the loop has read its goodbye
            await asyncio.sleep(0.02)
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", victim
            ):
                break
        await asyncio.sleep(0.05)
        handed = await connect(**kwargs)
        assert await _pid(handed) != victim
        assert warm.handed_ahead == 0  # the ended one was skipped, a new one opened
    finally:
        await admin.close()
        await warm.close(kwargs["database"])


async def test_no_connection_is_opened_ahead_once_its_database_is_taken(
    kwargs: dict[str, Any],
) -> None:
    warm, connect, _ = await _after_a_test_that_opened(2, kwargs)
    asked: list[bool] = []

    def wanted() -> bool:
        asked.append(True)
        return len(asked) < 2  # taken by its test after the first connection

    await warm.prepare(kwargs["database"], wanted)
    await connect(**kwargs)
    await connect(**kwargs)
    assert (warm.handed_ahead, warm.opened_on_demand) == (1, 3)
    await warm.close(kwargs["database"])


async def test_a_finished_tests_database_is_refused_to_late_connects(
    kwargs: dict[str, Any],
) -> None:
    warm, connect, _ = await _after_a_test_that_opened(1, kwargs)
    await warm.close(kwargs["database"])
    with pytest.raises(E2EError, match="left running"):
        await connect(**kwargs)
    assert warm.databases == []  # nothing opened, nothing left to close


def test_only_async_drivers_it_knows_are_opened_ahead() -> None:
    warm = WarmConnections()
    assert warm.connect_for("asyncpg", is_async=True) is not None
    assert warm.connect_for("psycopg", is_async=True) is not None
    assert warm.connect_for("psycopg", is_async=False) is None  # a sync engine
    assert warm.connect_for("pg8000", is_async=False) is None
