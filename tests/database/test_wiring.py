"""The app's engines are the test's: redirected, pinned during tests, real outside them."""

from __future__ import annotations

import pytest

from tests.conftest import Admin


def test_two_engines_see_one_transaction(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import os
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        # A read replica on another host: redirected like the primary.
        replica = create_async_engine("postgresql+asyncpg://ro:ro@replica.internal:6432/shop")

        async def test_replica_reads_what_the_primary_wrote(app, client):
            @app.get("/replica-names")
            async def replica_names():
                async with replica.connect() as conn:
                    return list((await conn.scalars(text("SELECT name FROM things"))).all())

            assert (await client.post("/things", params={"name": "via primary"})).status_code == 201
            assert (await client.get("/replica-names")).json() == ["via primary"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_work_outside_tests_is_committed_for_the_run(shop: pytest.Pytester, admin: Admin) -> None:
    shop.makepyfile(
        """
        import pytest_asyncio
        from sqlalchemy import text
        import shop

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def reference_data(e2e_database_url):
            async with shop.SessionLocal() as session:  # the app's own, bound in its lifespan
                await session.execute(text("INSERT INTO things (name) VALUES ('reference')"))
                await session.commit()

        async def test_1(client, reference_data):
            assert (await client.post("/things", params={"name": "mine"})).status_code == 201
            assert (await client.get("/things")).json() == ["reference", "mine"]

        async def test_2(client, reference_data):
            assert (await client.get("/things")).json() == ["reference"]
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_engine_of_another_driver_mid_test_is_a_clear_error(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        async def test_mixed(app, client):
            other = create_async_engine("postgresql+psycopg://u:p@elsewhere/db")

            @app.get("/other")
            async def use_other():
                async with other.connect() as conn:
                    return (await conn.execute(text("SELECT 1"))).scalar()

            assert (await client.get("/other")).status_code == 500
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result = shop.runpytest_subprocess("--e2e-strict-server-errors")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*A connection of driver psycopg*began a transaction at *in use_other*asyncpg*"]
    )


def test_outer_commit_refusal_names_the_sessions_join_mode(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import pytest
        from sqlalchemy.ext.asyncio import AsyncSession
        from fastapi_e2e import E2EError
        from shop import Thing

        async def test_control_fully(db_connection):
            session = AsyncSession(bind=db_connection, join_transaction_mode="control_fully")
            session.add(Thing(name="x"))
            with pytest.raises(E2EError) as refused:
                await session.commit()
            assert "join_transaction_mode='control_fully'" in str(refused.value)
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_report_says_when_the_harness_discarded_committed_writes(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import func, select, text
        import shop

        async def test_nested_commit_lost(app, client, db_session):
            @app.post("/write-then-fail")
            async def write_then_fail():
                async with shop.SessionLocal() as outer:
                    await outer.execute(text("INSERT INTO things (name) VALUES ('outer')"))
                    await shop.write_audit("inside")  # commits inside outer's savepoint
                    await outer.rollback()
                return {}

            assert (await client.post("/write-then-fail")).status_code == 200
            assert await db_session.scalar(select(func.count()).select_from(shop.Audit)) == 1
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*harness: The harness rolled back a savepoint of the app*in write_then_fail*"]
    )


def test_the_tests_own_connections_from_e2e_database_url_stay_outside(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        """
        import asyncpg
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine
        from shop import Thing

        async def test_outside(db_session, e2e_database_url):
            db_session.add(Thing(name="inside"))
            await db_session.flush()
            engine = create_async_engine(e2e_database_url)
            async with engine.connect() as conn:
                count = await conn.scalar(text("SELECT count(*) FROM things"))
            await engine.dispose()
            assert count == 0  # a connection of its own: the test's row is not committed
            dsn = e2e_database_url.set(drivername="postgresql")
            raw = await asyncpg.connect(dsn.render_as_string(hide_password=False))
            try:
                assert await raw.fetchval("SELECT count(*) FROM things") == 0
            finally:
                await raw.close()
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_an_inner_run_leaves_the_process_as_it_found_it(shop: pytest.Pytester) -> None:
    import asyncpg
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.dialects import registry
    from sqlalchemy.orm import Session

    from fastapi_e2e.database import gate, sessions, wiring

    def state() -> tuple[object, ...]:
        names = ("postgresql.asyncpg", "postgresql.psycopg")
        return (
            event.contains(Session, "do_orm_execute", sessions._refresh_on_select),
            {name: registry.load(name).__module__ for name in names},
            asyncpg.connect,
            list(wiring._active),
        )

    before = state()
    shop.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    shop.makepyfile(
        "async def test_x(client):\n    assert (await client.get('/things')).status_code == 200\n"
    )
    # Python 3.13 reports some library's unclosed sqlite connection at the inner run's end.
    shop.runpytest_inprocess(
        "-W", "ignore::pytest.PytestUnraisableExceptionWarning"
    ).assert_outcomes(passed=1)
    assert state() == before
    if wiring._active:
        return  # this process runs the example app's harness too (-n): its listener is live
    # No engine listener of the inner run is left: a statement "from a request" on an
    # engine the harness never saw would be refused as an escape if one were.
    token = gate.REQUEST_TOKEN.set(gate.Request(None))
    try:
        engine = create_engine("sqlite://")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        gate.REQUEST_TOKEN.reset(token)


def test_without_the_harness_engines_keep_their_pool_limits(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from sqlalchemy.ext.asyncio import create_async_engine

        def test_untouched():
            engine = create_async_engine("postgresql+asyncpg://u@h/db", pool_size=1, max_overflow=0)
            assert engine.pool._max_overflow == 0
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_usage_error_gives_the_dialect_names_back(pytester: pytest.Pytester) -> None:
    from fastapi_e2e.database import registration

    before = registration._users
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    result = pytester.runpytest_inprocess("--e2e-db-url", "notaurl://x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert registration._users == before


def test_an_autocommit_app_engine_does_not_make_the_test_commit(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        # Made at collection, before the shop's own: the app's first engine, whose
        # driver and options the tests' connections copy (not its isolation level).
        OLAP = "postgresql+asyncpg://r@olap/r"
        reporting = create_async_engine(OLAP, isolation_level="AUTOCOMMIT")

        async def test_1_writes(db_session):
            await db_session.execute(text("INSERT INTO things (name) VALUES ('kept?')"))

        async def test_2_nothing_kept(db_session):
            assert await db_session.scalar(text("SELECT count(*) FROM things")) == 0
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_dialect_names_survive_a_reimport_of_sqlalchemy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import importlib, sys

        def test_reload_and_fresh_import():
            import sqlalchemy.dialects
            from sqlalchemy.ext.asyncio import create_async_engine

            def ours():
                engine = create_async_engine("postgresql+asyncpg://u@h/db")
                return type(engine.sync_engine.dialect).__module__

            assert ours() == "fastapi_e2e.database.dialects"
            importlib.reload(sqlalchemy.dialects)
            assert ours() == "fastapi_e2e.database.dialects"
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
