"""App factory; a global session manager whose engine is made in the lifespan."""

from __future__ import annotations


def test_lifespan_engine_joins_the_test_and_is_disposed(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app(
        "sessionmanager_app", "sessionmanager_app:create_app", "sessionmanager_app:Base.metadata"
    )
    tester.makepyfile(
        """
        from sqlalchemy import select
        from sessionmanager_app import Tag

        async def test_route_commit_is_seen_by_the_test(client, db_session):
            assert (await client.post("/tags", params={"name": "a"})).status_code == 201
            assert (await db_session.scalars(select(Tag.name))).all() == ["a"]

        async def test_conflict_rolls_back_only_the_route(client, db_session):
            db_session.add(Tag(name="seeded"))
            await db_session.flush()
            assert (await client.post("/tags", params={"name": "seeded"})).status_code == 409
            assert (await client.post("/tags", params={"name": "new"})).status_code == 201
            assert (await client.get("/tags")).json() == ["seeded", "new"]

        async def test_starts_empty(client):
            assert (await client.get("/tags")).json() == []
        """
    )
    result = tester.runpytest_subprocess("--random-order", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*sessionmanager: engine disposed*"])
