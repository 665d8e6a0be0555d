"""Behaviours: errors with a known cause in this harness carry a note with the fix."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST

NO_HANG = 60


def test_missing_greenlet_in_the_test_body_is_explained(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from shop import Thing

        async def test_lazy(db_session):
            thing = Thing(name="t")
            db_session.add(thing)
            await db_session.flush()
            db_session.expire(thing)
            thing.name
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E *MissingGreenlet*", "E *fastapi-e2e: SQLAlchemy tried to load an attribute lazily*"]
    )


def test_missing_greenlet_in_a_route_is_explained_under_its_traceback(
    shop: pytest.Pytester,
) -> None:
    shop.copy_example("report_app.py")
    shop.makeconftest(
        "import report_app\n"
        + CONFTEST.format(extra="").replace('"shop:create_app"', '"report_app:create_app"')
    )
    shop.makepyfile(
        """
        async def test_lazy(client):
            await client.post("/things", params={"name": "x"})
            assert (await client.get("/report/lazy")).status_code == 200
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    server exception (*",
            "      sqlalchemy.exc.MissingGreenlet: *",
            "      note: fastapi-e2e: SQLAlchemy tried to load an attribute lazily*",
        ]
    )


def test_another_operation_in_progress_is_explained(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio

        async def test_gathered(db_connection):
            raw = await db_connection.get_raw_connection()
            driver = raw.driver_connection
            await asyncio.gather(driver.fetch("SELECT pg_sleep(0.1)"), driver.fetch("SELECT 1"))
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *another operation is in progress*",
            "E *fastapi-e2e: two operations ran at once on one asyncpg connection*",
        ]
    )


def test_loop_mismatch_is_explained(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio

        async def test_other_loop(client):
            other = asyncio.new_event_loop()
            try:
                await other.create_future()
            finally:
                other.close()
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *RuntimeError: *attached to a different loop",
            "E *fastapi-e2e: an object bound to one event loop was used from another*",
        ]
    )


def test_lifespan_timeout_is_explained(shop: pytest.Pytester) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(
        "import lifespan_apps\n"
        + CONFTEST.format(extra="lifespan_timeout=0.5,").replace(
            '"shop:create_app"', '"lifespan_apps:create_hanging_app"'
        )
    )
    shop.makepyfile("async def test_1(client):\n    pass\n")
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*The app's lifespan startup did not finish within 0.5 s*",
            "*fastapi-e2e: the lifespan runs once per test session*",
        ]
    )


def test_teardown_that_cannot_roll_back_is_explained(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from sqlalchemy import text

        async def test_idle_too_long(db_connection):
            await db_connection.execute(
                text("SET LOCAL idle_in_transaction_session_timeout = '100ms'")
            )
            await asyncio.sleep(0.5)
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Rolling back the test's transaction failed*",
            "*fastapi-e2e: the test's connection was no longer usable at teardown*",
        ]
    )
