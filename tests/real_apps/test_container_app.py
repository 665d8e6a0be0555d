"""No session in Depends: a DI container's engine, repositories that commit."""

from __future__ import annotations


def test_repositories_commit_into_the_test(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("container_app", "container_app:app", "container_app:Base.metadata")
    tester.makepyfile(
        """
        import asyncio
        from sqlalchemy import select
        from container_app import Account

        async def test_repository_commit_is_seen_by_the_test(client, db_session):
            assert (await client.post("/accounts", params={"login": "ann"})).status_code == 201
            assert (await db_session.scalars(select(Account.login))).all() == ["ann"]

        async def test_integrity_error_keeps_the_seeded_rows(client, db_session):
            db_session.add(Account(login="taken"))
            await db_session.flush()
            assert (await client.post("/accounts", params={"login": "taken"})).status_code == 409
            assert (await client.get("/accounts")).json() == ["taken"]

        async def test_concurrent_requests_beyond_the_apps_pool_size(client):
            # The container's engine has pool_size=1, max_overflow=0.
            responses = await asyncio.gather(
                *(client.post("/accounts", params={"login": f"u{n}"}) for n in range(10))
            )
            assert [r.status_code for r in responses] == [201] * 10
            assert len((await client.get("/accounts")).json()) == 10

        async def test_starts_empty(client):
            assert (await client.get("/accounts")).json() == []
        """
    )
    tester.runpytest_subprocess("--random-order").assert_outcomes(passed=4)
