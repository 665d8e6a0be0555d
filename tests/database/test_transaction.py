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
    # The run dropped its test database; only schema templates (the cache) remain.
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


def test_failed_statement_in_a_route_leaves_later_requests_working(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from fastapi import Depends, HTTPException
        from sqlalchemy import Integer, cast, literal, select
        from sqlalchemy.exc import DBAPIError
        import shop

        async def test_bad_input_then_good(app, client):
            @app.get("/parse")
            async def parse(v: str, s=Depends(shop.get_session)):
                try:
                    return {"n": await s.scalar(select(cast(literal(v), Integer)))}
                except DBAPIError:
                    raise HTTPException(400, "not a number") from None

            assert (await client.get("/parse", params={"v": "x"})).status_code == 400
            assert (await client.get("/parse", params={"v": "7"})).json() == {"n": 7}
            assert (await client.post("/things", params={"name": "after"})).status_code == 201
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_uncommitted_core_write_is_discarded_like_in_production(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from fastapi import Depends
        from sqlalchemy import text
        import shop

        async def test_forgot_to_commit(app, client):
            @app.post("/sloppy")
            async def sloppy(s=Depends(shop.get_session)):
                await s.execute(text("SELECT 1"))
                conn = await s.connection()
                await conn.execute(text("INSERT INTO things (name) VALUES ('uncommitted')"))
                return {}

            assert (await client.post("/sloppy")).status_code == 200
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_override_sessions_use_the_dependencys_own_sessionmaker_options(
    shop: pytest.Pytester,
) -> None:
    # No sessionmakers=[...]: the options come from the sessionmaker get_session uses
    # (expire_on_commit=False), so reading attributes after commit works as in production.
    shop.makeconftest(CONFTEST.format(extra="").replace('sessionmakers=["shop:SessionLocal"],', ""))
    shop.makepyfile(
        """
        from fastapi import Depends
        import shop

        async def test_read_after_commit(app, client):
            @app.post("/plain", status_code=201)
            async def plain(name: str, s=Depends(shop.get_session)):
                thing = shop.Thing(name=name)
                s.add(thing)
                await s.commit()
                return {"id": thing.id, "name": thing.name}

            response = await client.post("/plain", params={"name": "p"})
            assert response.status_code == 201, response.text
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_db_session_waits_for_concurrent_requests(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from sqlalchemy import func, select
        from shop import Thing

        async def test_interleaved(client, db_session):
            async def probe():
                await asyncio.sleep(0.001)
                return await db_session.scalar(select(func.count()).select_from(Thing))

            for i in range(5):
                await asyncio.gather(client.post("/things", params={"name": f"a{i}"}), probe())
                db_session.add(Thing(name=f"b{i}"))
                await db_session.commit()
            assert await db_session.scalar(select(func.count()).select_from(Thing)) == 10
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_streaming_body_and_spawned_task_share_the_requests_turn(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from fastapi import Depends
        from fastapi.responses import StreamingResponse
        from sqlalchemy import func, select
        import shop

        async def count(session):
            return await session.scalar(select(func.count()).select_from(shop.Thing))

        async def test_stream_and_task(app, client, db_session):
            db_session.add(shop.Thing(name="one"))

            @app.get("/stream")
            async def stream(s=Depends(shop.get_session)):
                first = await count(s)

                async def body():
                    yield f"{first}\\n"
                    async with shop.SessionLocal() as other:
                        yield f"{await count(other)}\\n"

                return StreamingResponse(body())

            @app.get("/spawn")
            async def spawn(s=Depends(shop.get_session)):
                first = await count(s)

                async def child():
                    async with shop.SessionLocal() as other:
                        return await count(other)

                return [first, await asyncio.create_task(child())]

            response = await client.get("/stream", timeout=5)
            assert response.text == "1\\n1\\n"
            assert (await client.get("/spawn", timeout=5)).json() == [1, 1]
        """
    )
    result = shop.runpytest_subprocess("--durations=1")
    result.assert_outcomes(passed=1)


def test_listed_sessionmakers_are_left_as_the_app_made_them(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        CONFTEST.format(extra="").replace(
            'sessionmakers=["shop:SessionLocal"]',
            'sessionmakers=["shop:SessionLocal", "again:SessionLocal"]',
        )
    )
    shop.makepyfile(
        again="from shop import SessionLocal\n",
        test_twice="""
        from sqlalchemy.ext.asyncio import AsyncEngine
        import shop

        async def test_1_during_a_test(client):
            # the engine's connections are redirected, not the sessionmaker rebound
            assert isinstance(shop.SessionLocal.kw["bind"], AsyncEngine)
            assert (await client.post("/things", params={"name": "a"})).status_code == 201

        async def test_2_between_tests():
            assert isinstance(shop.SessionLocal.kw["bind"], AsyncEngine)
        """,
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_connection_lost_mid_test_is_dropped_and_the_next_test_runs(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        async def test_1_kills_its_connection(db_connection):
            with pytest.raises(DBAPIError):
                await db_connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

        async def test_2_fresh_connection(client):
            assert (await client.get("/things")).json() == []
        """
    )
    # The test saw the error itself; teardown adds no second one.
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_raw_commit_statement_is_refused(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from fastapi_e2e import E2EError

        async def test_1_raw_commit(db_session):
            await db_session.execute(text("INSERT INTO things (name) VALUES ('raw')"))
            statements = (
                "COMMIT", "end", "  Rollback", "BEGIN", "-- done\\nCOMMIT", "/* x */ COMMIT"
            )
            for statement in statements:
                with pytest.raises(E2EError, match="Refused to commit"):
                    await db_session.execute(text(statement))

        async def test_2_nothing_leaked(client):
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_statements_that_merely_mention_transaction_words_run(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text

        async def test_not_transaction_control(db_connection):
            await db_connection.execute(text("DO $$ BEGIN PERFORM 1; END $$"))
            cte = "WITH begin AS (SELECT 1 AS commit) SELECT * FROM begin"
            await db_connection.execute(text(cte))
            assert await db_connection.scalar(text("SELECT 2 AS rollback")) == 2
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_gathered_sessions_inside_one_route_take_turns(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        import shop

        async def write(name):
            async with shop.SessionLocal() as session:
                session.add(shop.Thing(name=name))
                await asyncio.sleep(0.01)
                await session.commit()

        async def test_gather_in_route(app, client):
            @app.post("/pair", status_code=201)
            async def pair():
                await asyncio.gather(write("left"), write("right"))
                return {}

            assert (await client.post("/pair")).status_code == 201
            assert sorted((await client.get("/things")).json()) == ["left", "right"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_route_calling_another_route_through_the_client(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from fastapi import Depends
        from sqlalchemy import func, select
        import shop

        async def test_nested_request(app, client, db_session):
            db_session.add(shop.Thing(name="one"))

            @app.get("/outer")
            async def outer(s=Depends(shop.get_session)):
                mine = await s.scalar(select(func.count()).select_from(shop.Thing))
                theirs = (await client.get("/things", timeout=3)).json()
                return {"mine": mine, "theirs": theirs}

            response = await client.get("/outer", timeout=5)
            assert response.json() == {"mine": 1, "theirs": ["one"]}
        """
    )
    shop.runpytest_subprocess(timeout=60).assert_outcomes(passed=1)


def test_session_held_across_the_route_is_a_clear_error_not_a_hang(
    shop: pytest.Pytester,
) -> None:
    shop.copy_example("middleware_app.py")
    shop.makeconftest(
        CONFTEST.format(extra="").replace('"shop:create_app"', '"middleware_app:create_app"')
    )
    shop.makepyfile(
        """
        async def test_1_report_shows_why(client):
            response = await client.post("/things", params={"name": "y"}, timeout=5)
            assert response.status_code == 200, "show the server errors"

        async def test_2_next_test_is_unaffected(client):
            assert (await client.get("/things", timeout=2)).json() == []
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*Refused to release savepoint e2e_* while a savepoint started inside it*"]
    )


def test_rebound_sessionmaker_keeps_a_nested_commit_when_it_only_read(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import func, select, text
        import shop

        async def test_read_then_nested_commit(app, client, db_session):
            @app.post("/read-then-audit")
            async def read_then_audit():
                async with shop.SessionLocal() as outer:
                    await outer.execute(text("SELECT 1"))
                    await shop.write_audit("inside")
                return {}

            assert (await client.post("/read-then-audit")).status_code == 200
            assert await db_session.scalar(select(func.count()).select_from(shop.Audit)) == 1
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_fixture_may_seed_through_its_own_engine_before_tests(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        CONFTEST.format(extra="")
        + """

@pytest.fixture(scope="session")
def reference_data(e2e_database_url):
    import asyncio
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def seed():
        engine = create_async_engine(e2e_database_url)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO things (name) VALUES ('reference')"))
        await engine.dispose()

    asyncio.run(seed())
"""
    )
    shop.makepyfile(
        """
        async def test_sees_reference_data(reference_data, client):
            assert (await client.get("/things")).json() == ["reference"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_db_session_get_shows_what_the_app_changed(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text
        from shop import Thing

        async def test_get_after_app_update(db_session, db_connection):
            thing = Thing(name="old")
            db_session.add(thing)
            await db_session.commit()
            await db_connection.execute(text("UPDATE things SET name = 'new'"))
            assert (await db_session.get(Thing, thing.id)).name == "new"
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_task_left_running_cannot_write_into_the_next_test(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import asyncio
        from sqlalchemy import func, select
        import shop

        async def test_1_spawns(app, client):
            @app.post("/spawn")
            async def spawn():
                async def later():
                    await asyncio.sleep(0.2)
                    await shop.write_audit("late")
                asyncio.get_running_loop().create_task(later())
                return {}

            assert (await client.post("/spawn")).status_code == 200

        async def test_2_is_not_written_into(client, db_session):
            await asyncio.sleep(0.4)
            assert await db_session.scalar(select(func.count()).select_from(shop.Audit)) == 0
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_2_is_not_written_into*",
            "*Refused a session opened at *shop.py:* in write_audit by a task that a request "
            "of an earlier test started*",
        ]
    )


def test_connection_kept_from_an_earlier_test_cannot_reach_a_later_one(
    shop: pytest.Pytester,
) -> None:
    # Each test has its own connection, closed at its end: code that kept an earlier
    # test's connection gets an error instead of writing into a later test.
    shop.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from sqlalchemy.exc import ResourceClosedError

        kept = []

        async def test_1_keeps_its_connection(db_connection):
            kept.append(db_connection)

        async def test_2_cannot_write_through_it(client, db_connection):
            assert db_connection is not kept[0]
            with pytest.raises(ResourceClosedError):
                await kept[0].execute(text("INSERT INTO things (name) VALUES ('leak')"))
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_closing_db_connection_is_refused_once_and_clearly(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_closes(db_connection):
            await db_connection.close()

        async def test_next_one_is_fine(client):
            assert (await client.get("/things")).json() == []
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)  # no second, confusing teardown error
    result.stdout.fnmatch_lines(
        ["*Refused to commit or roll back*db_connection.commit()/rollback()/close()*"]
    )


def test_fixtures_fetched_inside_the_test_join_its_transaction(
    shop: pytest.Pytester, admin: Admin
) -> None:
    # The per-test fixtures find their test without `request`; fetched late, from the
    # test body, they must still join that test's transaction and end with it.
    shop.makepyfile(
        """
        from sqlalchemy import text
        from shop import Thing

        async def test_late(request, client):
            db_session = request.getfixturevalue("db_session")
            db_connection = request.getfixturevalue("db_connection")
            db_session.add(Thing(name="late"))
            await db_session.flush()
            assert (await client.get("/things")).json() == ["late"]
            rows = await db_connection.execute(text("SELECT name FROM things"))
            assert rows.scalars().all() == ["late"]

        async def test_after():
            pass

        async def test_next(client):
            assert (await client.get("/things")).json() == []
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=3)
    assert admin.e2e_databases() == []


def test_first_harness_fixture_fetched_inside_the_loop_is_a_clear_error(
    shop: pytest.Pytester,
) -> None:
    # The test's transaction is started on the loop, so it cannot be started from
    # code that loop is running; the run itself must survive for the next tests.
    shop.makepyfile(
        """
        async def test_late(request):
            request.getfixturevalue("db_session")

        async def test_next(client):
            assert (await client.get("/things")).json() == []
        """
    )
    result = shop.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_late asked for its first harness fixture while the event loop was running*"]
    )


def test_a_rerun_test_gets_a_fresh_client_and_transaction(shop: pytest.Pytester) -> None:
    # Rerun plugins (pytest-rerunfailures) run the same item's protocol again; the
    # second attempt must not be handed the first attempt's finished test objects.
    shop.makeconftest(
        shop.path.joinpath("conftest.py").read_text()
        + """

from _pytest.runner import runtestprotocol

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in range(2):
        runtestprotocol(item, nextitem=nextitem, log=attempt == 1)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""
    )
    shop.makepyfile(
        """
        from shop import Thing

        async def test_twice(client, db_session):
            db_session.add(Thing(name="once"))
            assert (await client.get("/things")).json() == ["once"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)
