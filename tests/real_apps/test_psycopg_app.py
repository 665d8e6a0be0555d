"""psycopg 3: the app's driver is the test's, so queries behave as in production."""

from __future__ import annotations


def test_runs_on_psycopg_with_its_parameter_rules(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("psycopg_app", "psycopg_app:app", "psycopg_app:Base.metadata")
    tester.makepyfile(
        """
        from psycopg_app import Item

        async def test_text_id_compared_to_integer_column(client, db_session):
            lamp = Item(name="lamp")
            db_session.add(lamp)
            await db_session.flush()
            # The route binds the id as a str: psycopg lets the server cast it, as in
            # production; asyncpg would refuse it ("invalid input for query argument $1").
            assert (await client.get(f"/items/{lamp.id}")).json() == {"name": "lamp"}
            created = (await client.post("/items", params={"name": "desk"})).json()
            assert (await client.get(f"/items/{created['id']}")).json() == {"name": "desk"}

        async def test_isolation_check_mid_transaction_keeps_the_write(client, db_session):
            from sqlalchemy import select

            response = await client.post("/items/checked", params={"name": "kept"})
            assert response.json() == {"isolation": "READ COMMITTED"}
            assert (await db_session.scalars(select(Item.name))).all() == ["kept"]

        async def test_both_sides_use_psycopg(client, db_connection):
            assert db_connection.dialect.driver == "psycopg"
            assert (await client.get("/driver")).json() == {"driver": "psycopg"}

        async def test_starts_empty(db_session):
            from sqlalchemy import select
            assert (await db_session.scalars(select(Item))).all() == []
        """
    )
    result = tester.runpytest_subprocess("--random-order")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test database e2e_* via postgresql+psycopg*"])


def test_a_table_altered_in_one_test_is_queried_in_the_next(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("psycopg_app", "psycopg_app:app", "psycopg_app:Base.metadata")
    tester.makepyfile(
        """
        from sqlalchemy import select, text
        from psycopg_app import Item

        async def read(db_session):
            for _ in range(6):  # psycopg prepares a statement on its 5th execution
                assert (await db_session.scalars(select(Item.name))).all() == ["a"]

        async def test_1_alters(db_session):
            db_session.add(Item(name="a"))
            await read(db_session)
            await db_session.execute(text("ALTER TABLE items ALTER COLUMN name TYPE text"))
            await read(db_session)

        async def test_2_queries(db_session):
            db_session.add(Item(name="a"))
            await read(db_session)
        """
    )
    tester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_commits_mode_commits_for_real_on_psycopg(real_app) -> None:  # type: ignore[no-untyped-def]
    tester = real_app("psycopg_app", "psycopg_app:app", "psycopg_app:Base.metadata")
    tester.makepyfile(
        """
        import asyncio, time, psycopg, pytest
        from sqlalchemy import func, select
        from psycopg_app import Item

        pytestmark = pytest.mark.e2e_commits

        def dsn(url):
            return url.set(drivername="postgresql").render_as_string(hide_password=False)

        @pytest.mark.parametrize("n", range(4))
        async def test_a_second_connection_sees_the_commit(
            client, db_session, e2e_test_database_url, n
        ):
            started = time.time()
            assert await db_session.scalar(select(func.count()).select_from(Item)) == 0
            assert (await client.post("/items", params={"name": f"n{n}"})).status_code == 201
            async with await psycopg.AsyncConnection.connect(dsn(e2e_test_database_url)) as other:
                cursor = await other.execute("SELECT name FROM items")
                assert await cursor.fetchall() == [(f"n{n}",)]
                cursor = await other.execute(
                    "SELECT count(*), max(extract(epoch FROM backend_start)) "
                    "FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                )
                connections, newest = await cursor.fetchone()
            assert connections == 2  # the app's and db_session's
            if n >= 1:  # opened ahead, before the test began
                assert float(newest) < started
            await asyncio.sleep(0.3)
        """
    )
    result = tester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*connections for them: 6 opened ahead, 2 on demand*"])
