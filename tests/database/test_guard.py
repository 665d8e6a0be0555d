"""Escapes: work that cannot join the test's transaction fails the test, naming the line.

The app's async engines are wired, whatever they are; what is left are sync engines
(a thread), engines of another database, raw asyncpg (tests/real_apps), and tasks a
request left running into the next test.
"""

from __future__ import annotations

import pytest

SYNC_ROUTE = """
import os
from fastapi import Request
from sqlalchemy import create_engine, text

def add_sync_route(app, swallow=False):
    @app.post("/sync-write")
    def sync_write():  # FastAPI runs it in a worker thread
        url = os.environ["DATABASE_URL"].replace("+asyncpg", "+psycopg")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO things (name) VALUES ('sync')"))
        except Exception:
            if not swallow:
                raise
        finally:
            engine.dispose()
        return {}
"""


def test_the_apps_own_engine_used_directly_joins_the_test(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import select
        from shop import Thing

        async def test_1_writes_through_the_engine(client, db_session):
            assert (await client.post("/escape")).status_code == 201
            assert (await db_session.scalars(select(Thing.name))).all() == ["escaped"]

        async def test_2_nothing_was_kept(client):
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_sync_engine_fails_the_test_naming_the_route_and_the_fix(shop: pytest.Pytester) -> None:
    shop.makepyfile(sync_routes=SYNC_ROUTE)
    shop.makepyfile(
        """
        from sync_routes import add_sync_route

        async def test_escapes(app, client):
            add_sync_route(app)
            assert (await client.post("/sync-write")).status_code == 500

        async def test_nothing_was_written(client):
            assert (await client.get("/things")).json() == []
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_escapes*",
            "*A statement ran on a database engine the harness does not control*"
            "sync_routes.py:*in sync_write*Fix: make it with create_async_engine()*",
        ]
    )


def test_escape_swallowed_by_the_app_still_fails_the_test(shop: pytest.Pytester) -> None:
    shop.makepyfile(sync_routes=SYNC_ROUTE)
    shop.makepyfile(
        """
        from sync_routes import add_sync_route

        async def test_swallowed(app, client):
            add_sync_route(app, swallow=True)
            assert (await client.post("/sync-write")).status_code == 200
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_swallowed*",
            "*engine the harness does not control*sync_routes.py:*in sync_write*",
        ]
    )


def test_lifespan_may_use_its_engine_outside_tests(shop: pytest.Pytester) -> None:
    # The shop's lifespan runs SELECT 1 on its own engine at startup: not an escape.
    shop.makepyfile(
        "async def test_ok(client):\n    assert (await client.get('/things')).status_code == 200\n"
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_task_left_running_by_a_test_cannot_write_between_tests(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from sqlalchemy import func, select
        import shop

        async def test_1_fires_and_forgets(app, client):
            @app.post("/fire")
            async def fire():
                async def later():
                    await asyncio.sleep(0.05)
                    await shop.write_audit("after the test")
                asyncio.get_running_loop().create_task(later())
                return {}

            assert (await client.post("/fire")).status_code == 200

        async def test_2_no_harness():
            await asyncio.sleep(0.3)  # the task runs now, between harness tests

        async def test_3_reports_it(db_session):
            count = await db_session.scalar(select(func.count()).select_from(shop.Audit))
            assert count == 0
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly", "-W", "ignore")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_3_reports_it*", "*Refused a session opened at*in write_audit*"]
    )
