"""Behaviour 4 and 6: one shared transaction per test, rolled back; concurrent requests."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST, Admin


def test_app_rollback_keeps_seeded_rows(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import select
        from shop import Thing

        async def test_conflict(client, db_session):
            db_session.add(Thing(name="seeded"))
            await db_session.flush()
            assert (await client.post("/things", params={"name": "fresh"})).status_code == 201
            # the app's commit fails, it rolls back: only its own savepoint goes
            assert (await client.post("/things", params={"name": "seeded"})).status_code == 409
            names = (await db_session.scalars(select(Thing.name).order_by(Thing.id))).all()
            assert names == ["seeded", "fresh"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_unflushed_seed_is_visible_to_the_app(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from shop import Thing

        async def test_seed(client, db_session):
            db_session.add(Thing(name="pending"))  # no flush: the harness flushes for us
            assert (await client.get("/things")).json() == ["pending"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_app_writes_visible_to_db_session_and_gone_next_test(
    shop: pytest.Pytester, admin: Admin
) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import select, text
        from shop import Thing, Audit

        async def test_1_writes(client, db_session, db_connection):
            assert (await client.post("/things", params={"name": "a"})).status_code == 201
            assert (await db_session.scalars(select(Thing.name))).all() == ["a"]
            # the background task used the module-level sessionmaker, rebound to us
            assert (await db_session.scalars(select(Audit.action))).all() == ["created a"]
            await db_connection.execute(text("INSERT INTO things (name) VALUES ('core')"))
            assert (await client.get("/things")).json() == ["a", "core"]

        async def test_2_sees_nothing(client, db_session):
            assert (await client.get("/things")).json() == []
            assert (await db_session.scalars(select(Audit))).all() == []
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_db_session_commit_is_a_savepoint(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from shop import Thing

        async def test_1_commits(db_session):
            db_session.add(Thing(name="committed"))
            await db_session.commit()
            assert db_session.in_transaction() is False

        async def test_2_sees_nothing(client):
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=2)


def test_select_refreshes_objects_the_app_changed(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import select, text
        from shop import Thing

        async def test_refresh(client, db_session, db_connection):
            thing = Thing(name="old")
            db_session.add(thing)
            await db_session.flush()
            await db_connection.execute(text("UPDATE things SET name = 'new'"))
            again = await db_session.scalar(select(Thing))
            assert again is thing and thing.name == "new"
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_nothing_persists_after_the_run(shop: pytest.Pytester, admin: Admin) -> None:
    shop.makepyfile(
        """
        import os
        from sqlalchemy import select
        from shop import Thing

        async def test_write(client, e2e_database_url):
            assert (await client.post("/things", params={"name": "x"})).status_code == 201
            with open("dbname.txt", "w") as f:
                f.write(e2e_database_url.database)
        """
    )
    shop.runpytest_subprocess("-s").assert_outcomes(passed=1)
    # The run dropped its databases; nothing named like ours is left on the server.
    assert admin.e2e_databases() == []


def test_fifty_concurrent_posts_all_succeed(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from sqlalchemy import func, select
        from shop import Thing, Audit

        async def test_gather(client, db_session):
            db_session.add(Thing(name="seed"))
            await db_session.flush()
            responses = await asyncio.gather(
                *(client.post("/things", params={"name": f"n{i}"}) for i in range(50))
            )
            assert [r.status_code for r in responses] == [201] * 50
            assert await db_session.scalar(select(func.count()).select_from(Thing)) == 51
            assert await db_session.scalar(select(func.count()).select_from(Audit)) == 50
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_concurrent_conflicts_roll_back_only_their_own_work(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio

        async def test_gather_conflicts(client):
            responses = await asyncio.gather(
                *(client.post("/things", params={"name": f"n{i % 5}"}) for i in range(20))
            )
            codes = sorted(r.status_code for r in responses)
            assert codes == [201] * 5 + [409] * 15
            assert sorted((await client.get("/things")).json()) == [f"n{i}" for i in range(5)]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_dependency_yielding_a_sessionmaker(shop: pytest.Pytester) -> None:
    shop.makeconftest(CONFTEST.format(extra="").replace('"shop:get_session"', '"shop:get_maker"'))
    shop.makepyfile(
        """
        from sqlalchemy import select
        from shop import Thing

        async def test_maker(client, db_session):
            db_session.add(Thing(name="seed"))
            assert (await client.post("/things-via-maker", params={"name": "m"})).status_code == 201
            assert (await client.get("/count-via-maker")).json() == 2
            names = await db_session.scalars(select(Thing.name).order_by(Thing.id))
            assert names.all() == ["seed", "m"]

        async def test_isolated(client):
            assert (await client.get("/count-via-maker")).json() == 0
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=2)


def test_db_connection_commit_is_refused(shop: pytest.Pytester, admin: Admin) -> None:
    shop.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from fastapi_e2e import E2EError

        async def test_1_tries_to_commit(db_connection):
            await db_connection.execute(text("INSERT INTO things (name) VALUES ('kept?')"))
            with pytest.raises(E2EError, match="Refused to commit"):
                await db_connection.commit()

        async def test_2_nothing_leaked(client):
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=2)
