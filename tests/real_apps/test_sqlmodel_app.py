"""SQLModel's AsyncSession and exec(), in the routes and in db_session."""

from __future__ import annotations


def test_exec_works_in_routes_and_in_the_test(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("sqlmodel_app", "sqlmodel_app:app", "sqlmodel:SQLModel.metadata")
    tester.makepyfile(
        """
        from sqlmodel import select
        from sqlmodel.ext.asyncio.session import AsyncSession
        from sqlmodel_app import Hero

        async def test_db_session_is_sqlmodels(db_session):
            assert isinstance(db_session, AsyncSession)

        async def test_both_ways(client, db_session):
            db_session.add(Hero(name="Deadpond", age=30))
            await db_session.flush()
            created = await client.post("/heroes", json={"name": "Rusty-Man", "age": 48})
            assert created.status_code == 201
            names = (await db_session.exec(select(Hero.name).order_by(Hero.id))).all()
            assert names == ["Deadpond", "Rusty-Man"]
            assert [h["name"] for h in (await client.get("/heroes")).json()] == names

        async def test_starts_empty(db_session):
            assert (await db_session.exec(select(Hero))).all() == []
        """
    )
    result = tester.runpytest_subprocess("--random-order")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*db_session: sqlmodel.ext.asyncio.session.AsyncSession*"])
