"""Each private API of another library that ``fastapi_e2e.compat`` relies on, pinned.

A release that moves or changes one fails here, under the name of what changed,
before it fails somewhere obscure in the harness.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import event, pool
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_e2e import compat
from fastapi_e2e.database.cluster import EmbeddedCluster
from fastapi_e2e.database.urls import asyncpg_connect_kwargs


async def test_sqlalchemy_greenlet_bridge_awaits_inside_sync_code() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await compat.run_in_greenlet(lambda: compat.await_in_greenlet(answer())) == 42


def test_pytest_asyncio_session_runner_fixture(request: pytest.FixtureRequest) -> None:
    runner = request.getfixturevalue(compat.SESSION_RUNNER_FIXTURE)
    assert callable(runner.run)
    assert isinstance(runner.get_loop(), asyncio.AbstractEventLoop)


def test_pytest_asyncio_reads_the_loop_scope_attribute() -> None:
    async def fixture_function() -> None:
        pass

    pytest_asyncio.fixture(loop_scope="module")(fixture_function)
    assert getattr(fixture_function, compat.LOOP_SCOPE_ATTRIBUTE) == "module"


@pytest.fixture
def wrapped_tmp_path(tmp_path: object) -> object:
    return tmp_path


def test_pytest_fixture_definitions_of_an_item(
    request: pytest.FixtureRequest, wrapped_tmp_path: object
) -> None:
    definitions = compat.fixture_functions(request.node, "wrapped_tmp_path")
    assert [function.__name__ for function, _ in definitions] == ["wrapped_tmp_path"]
    assert definitions[0][1] == ("tmp_path",)


def test_pytest_item_request(request: pytest.FixtureRequest) -> None:
    item_request = compat.item_request(request.node)
    assert isinstance(item_request, pytest.FixtureRequest)
    assert item_request.node is request.node


def test_a_registered_dialect_name_can_be_given_back() -> None:
    from sqlalchemy.dialects import registry

    registry.register("e2etest.probe", "fastapi_e2e.database.dialects", "AsyncpgDialect")
    compat.deregister_dialect(registry, "e2etest.probe")
    assert "e2etest.probe" not in registry.impls


def test_queuepool_overflow_limit_can_be_lifted() -> None:
    queue = pool.QueuePool(
        lambda: sqlite3.connect(":memory:"), pool_size=1, max_overflow=0, timeout=0.1
    )
    compat.lift_overflow_limit(queue)
    held = [queue.connect() for _ in range(3)]  # the limit would time out on the second
    assert len(held) == 3
    for connection in held:
        connection.close()
    queue.dispose()


def test_starlette_route_app_can_be_wrapped() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {}

    route = app.router.routes[-1]
    original = compat.route_app(route)
    assert callable(original)

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        await original(scope, receive, send)

    compat.replace_route_app(route, wrapper)
    assert compat.route_app(route) is wrapper


async def test_asyncpg_adapter_row_buffer_and_pool_connect(pg_cluster: EmbeddedCluster) -> None:
    from fastapi_e2e.database import wiring

    if wiring.active() is not None:  # -n: this worker also runs the example app's harness
        pytest.skip("a harness run is live in this process; its wiring would redirect")
    engine = create_async_engine(pg_cluster.url)
    counted: list[int | None] = []

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def count(conn: Any, cursor: Any, *args: Any) -> None:
        counted.append(compat.fetched_row_count(cursor))

    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1 UNION ALL SELECT 2")
    await engine.dispose()
    assert counted[-1] == 2

    seen: list[str] = []

    async def wrapper(connect: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append("connect")
        return await connect(*args, **kwargs)

    with compat.asyncpg_connect_replaced(wrapper):
        raw_pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(pg_cluster.url), min_size=1)
        await raw_pool.fetchval("SELECT 1")
        await raw_pool.close()
    assert seen, "asyncpg's Pool no longer connects through asyncpg.connection.connect"
    assert asyncpg.connect is compat.original_asyncpg_connect()


async def test_asyncpg_dialect_opens_a_connection_with_a_given_creator(
    pg_cluster: EmbeddedCluster,
) -> None:
    from fastapi_e2e.database import wiring

    if wiring.active() is not None:  # -n: this worker also runs the example app's harness
        pytest.skip("a harness run is live in this process; its wiring would redirect")
    opened: list[dict[str, Any]] = []

    async def creator(**kwargs: Any) -> Any:
        opened.append(kwargs)
        return await compat.original_asyncpg_connect()(**kwargs)

    params: dict[str, Any] = {}
    assert compat.open_with(params, creator)
    assert not compat.open_with(params, compat.original_asyncpg_connect())  # the first stays
    engine = create_async_engine(pg_cluster.url, connect_args=params)
    async with engine.connect() as conn:
        assert await conn.exec_driver_sql("SELECT 1") is not None
    await engine.dispose()
    assert [kwargs.get("database") for kwargs in opened] == [pg_cluster.url.database], (
        "SQLAlchemy's asyncpg dialect no longer opens connections with async_creator_fn"
    )

    import psycopg

    async def psycopg_creator(**kwargs: Any) -> Any:
        opened.append(kwargs)
        return await psycopg.AsyncConnection.connect(**kwargs)

    params = {}
    assert compat.open_with(params, psycopg_creator)
    engine = create_async_engine(
        pg_cluster.url.set(drivername="postgresql+psycopg"), connect_args=params
    )
    async with engine.connect() as conn:
        assert await conn.exec_driver_sql("SELECT 1") is not None
    await engine.dispose()
    assert opened[-1].get("dbname") == pg_cluster.url.database, (
        "SQLAlchemy's psycopg dialect no longer opens connections with async_creator_fn"
    )


async def test_uvicorn_server_serves_without_touching_signal_handlers() -> None:
    import signal
    import socket

    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = compat.server_without_signal_handlers(
        uvicorn.Config(app, interface="asgi3", lifespan="off", log_config=None)
    )
    assert isinstance(server, uvicorn.Server)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.001)
        # serve() enters capture_signals(), which would have replaced them by now.
        assert {sig: signal.getsignal(sig) for sig in before} == before
        server.should_exit = True
        await task


def test_asyncpg_dialect_prepared_statements_can_be_forgotten() -> None:
    engine = create_async_engine("postgresql+asyncpg://u@localhost/db")
    dialect = engine.sync_engine.dialect
    before = dialect._invalidate_schema_cache_asof  # type: ignore[attr-defined]
    compat.forget_prepared_statements(dialect)
    # Its connections compare this timestamp before each prepare and start afresh.
    assert dialect._invalidate_schema_cache_asof > before  # type: ignore[attr-defined]
    compat.forget_prepared_statements(object())  # psycopg's dialect: nothing to do
