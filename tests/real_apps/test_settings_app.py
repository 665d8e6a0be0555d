"""Engine and sessionmaker at import from split settings; commit after the yield."""

from __future__ import annotations


def test_writes_after_the_yield_are_kept_and_seen_both_ways(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("settings_app", "settings_app:app", "settings_app:Base.metadata")
    tester.makepyfile(
        """
        from sqlalchemy import select
        from settings_app import Note

        async def test_app_write_reaches_the_test(client, db_session):
            created = await client.post("/notes", params={"title": "first"})
            assert created.status_code == 201
            # committed by the dependency after its yield: readable by the next request
            assert (await client.get(f"/notes/{created.json()['id']}")).status_code == 200
            assert (await db_session.scalars(select(Note.title))).all() == ["first"]

        async def test_seed_reaches_the_app(client, db_session):
            db_session.add(Note(title="seeded"))
            await db_session.flush()
            assert (await client.get("/notes")).json() == ["seeded"]

        async def test_duplicate_is_the_handlers_500_and_keeps_the_seed(client, db_session):
            db_session.add(Note(title="taken"))
            await db_session.flush()
            response = await client.post("/notes", params={"title": "taken"})
            assert response.status_code == 500
            assert response.json() == {"detail": "database error"}
            assert (await client.get("/notes")).json() == ["taken"]

        async def test_starts_empty(client):
            assert (await client.get("/notes")).json() == []
        """
    )
    result = tester.runpytest_subprocess("--random-order")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test database e2e_* via postgresql+asyncpg*"])
