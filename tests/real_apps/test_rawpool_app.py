"""A raw asyncpg pool beside the engine: allowed in the lifespan, refused in a test."""

from __future__ import annotations


def test_raw_pool_statement_fails_the_test_naming_the_line(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("rawpool_app", "rawpool_app:app", "rawpool_app:Base.metadata")
    tester.makepyfile(
        """
        from rawpool_app import Event

        async def test_engine_route_sees_the_seed(client, db_session):
            db_session.add(Event(kind="click"))
            await db_session.flush()
            assert (await client.get("/events/count")).json() == {"count": 1}

        async def test_raw_pool_route(client):
            assert (await client.get("/events/raw-count")).status_code == 500
        """
    )
    result = tester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_raw_pool_route*",
            "*Refused asyncpg Connection.fetchval() at *rawpool_app.py:* in count_via_raw_pool*"
            "Nothing reached the server*",
        ]
    )
