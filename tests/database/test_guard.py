"""Behaviour 5: statements on any engine but the harness's fail the test, naming the call site."""

from __future__ import annotations

import pytest


def test_escape_fails_the_test_naming_the_route_and_the_fix(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_escapes(client):
            response = await client.post("/escape")
            assert response.status_code == 500

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
            "shop.py:*in escape*sessionmakers=*",
        ]
    )


def test_escape_swallowed_by_the_app_still_fails_the_test(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text

        async def test_swallowed(app, client):
            @app.get("/quiet-escape")
            async def quiet(request: __import__("fastapi").Request):
                try:
                    async with request.state.engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                except Exception:
                    pass
                return {}

            assert (await client.get("/quiet-escape")).status_code == 200
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_swallowed*",
            "*engine the harness does not control*.py:*in quiet*",
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
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_3_reports_it*", "*does not control*in write_audit*"]
    )
