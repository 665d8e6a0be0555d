"""Production parity: deferred constraints checked at the app's commit, per-request
settings gone after it, the app's role under row-level security, nothing left over
between tests (advisory locks, settings, prepared statements after DDL)."""

from __future__ import annotations

import pytest

from tests.conftest import Admin

PARITY_CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="parity_app:app", metadata="parity_app:Base.metadata", database_url_env="DATABASE_URL"
    )
"""


@pytest.fixture
def parity(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    pytester.copy_example("parity_app.py")
    pytester.makeconftest(PARITY_CONFTEST)
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return pytester


def test_deferred_violation_fails_at_the_apps_commit_as_in_production(
    parity: pytest.Pytester,
) -> None:
    parity.makepyfile(
        """
        from sqlalchemy import func, select
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
        from parity_app import Child, add_orphan

        async def test_orphan(client, db_session, e2e_database_url):
            in_test = (await client.post("/orphans")).json()
            # The same code committing for real, outside the test's transaction.
            engine = create_async_engine(e2e_database_url)
            try:
                async with async_sessionmaker(engine)() as session:
                    in_production = await add_orphan(session)
            finally:
                await engine.dispose()
            assert in_production["sqlstate"] == "23503"
            assert in_test == in_production
            # The app rolled back: nothing of it is left.
            assert await db_session.scalar(select(func.count()).select_from(Child)) == 0

        async def test_valid_at_commit_passes(client):
            assert (await client.post("/families")).status_code == 201
        """
    )
    result = parity.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_deferred_violation_by_the_tests_own_rows_fails_the_test(
    parity: pytest.Pytester,
) -> None:
    parity.makepyfile(
        """
        from parity_app import Child, Parent

        async def test_orphan_seed(db_session):
            db_session.add(Child(parent_id=777))
            await db_session.flush()

        async def test_parent_later(db_session):
            db_session.add(Child(parent_id=778))
            await db_session.flush()
            db_session.add(Parent(id=778))
            await db_session.flush()  # pending rows are never written: flushed, it is valid
        """
    )
    result = parity.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_orphan_seed*",
            "Rows this test wrote itself violate a deferred constraint*children_parent_id_fkey*"
            "Key (parent_id)=(777)*--e2e-no-deferred-check*",
        ]
    )


def test_deferred_check_can_be_turned_off(parity: pytest.Pytester) -> None:
    parity.makepyfile(
        """
        from parity_app import Child

        async def test_orphan_passes(client, db_session):
            assert (await client.post("/orphans")).json() == {"type": None}
            db_session.add(Child(parent_id=777))
        """
    )
    parity.runpytest_subprocess("--e2e-no-deferred-check").assert_outcomes(passed=1)
    parity.makeini("[pytest]\ne2e_no_deferred_check = true\n")
    parity.runpytest_subprocess().assert_outcomes(passed=1)


def test_set_local_of_one_request_is_gone_in_the_next(parity: pytest.Pytester) -> None:
    parity.makepyfile(
        """
        from sqlalchemy import text

        async def test_tenant(client, db_session):
            await db_session.execute(text("SET app.colour = 'blue'"))  # the test's own
            assert (await client.post("/tenants/1/notes", params={"body": "a"})).status_code == 201
            assert (await client.get("/tenant")).json() == {"tenant": None}
            assert (await client.get("/tenants/2/notes")).status_code == 200
            assert (await client.get("/tenant")).json() == {"tenant": None}
            assert await db_session.scalar(text("SHOW app.colour")) == "blue"
            tenant = text("SELECT current_setting('app.tenant', true)")
            assert await db_session.scalar(tenant) in ("", None)

        async def test_test_level_setting_survives_requests(client, db_session):
            await db_session.execute(text("SELECT set_config('app.tenant', '9', true)"))
            assert (await client.post("/tenants/1/notes", params={"body": "a"})).status_code == 201
            assert (await client.get("/tenant")).json() == {"tenant": "9"}
        """
    )
    parity.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


RLS_TEST = """
from sqlalchemy import text
from parity_app import Note

async def test_tenants(client, db_session, e2e_app_role):
    db_session.add_all([Note(tenant_id=1, body="mine"), Note(tenant_id=2, body="theirs")])
    await db_session.flush()
    expected = ["mine"] if e2e_app_role else ["mine", "theirs"]
    assert (await client.get("/tenants/1/notes")).json() == expected
    # The test's own session runs as the harness's role: it sees every tenant's rows.
    assert len((await db_session.scalars(text("SELECT body FROM notes"))).all()) == 2
    if e2e_app_role:
        assert (await client.post("/tenants/1/notes", params={{"body": "new"}})).status_code == 201
        assert await db_session.scalar(text("SELECT current_user")) != e2e_app_role
        await db_session.execute(text(f"SET ROLE {{e2e_app_role}}"))
        assert (await db_session.scalars(text("SELECT body FROM notes"))).all() == []
        assert (await client.get("/tenants/2/notes")).json() == ["theirs"]
        assert await db_session.scalar(text("SELECT current_user")) == e2e_app_role
        await db_session.execute(text("RESET ROLE"))
        assert len((await db_session.scalars(text("SELECT body FROM notes"))).all()) == 3
    assert {role!r} == e2e_app_role
"""


def test_row_level_security_applies_under_the_app_role(parity: pytest.Pytester) -> None:
    parity.makepyfile(RLS_TEST.format(role=None))
    parity.runpytest_subprocess().assert_outcomes(passed=1)  # a superuser: no RLS
    parity.makepyfile(RLS_TEST.format(role="parity_app_role"))
    parity.makeini("[pytest]\ne2e_app_role = parity_app_role\n")
    result = parity.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*role 'parity_app_role', which does not exist*"])


def test_row_level_security_under_a_role_made_for_the_run(
    parity: pytest.Pytester, admin: Admin
) -> None:
    parity.makepyfile(
        RLS_TEST.replace("{role!r} == e2e_app_role", "e2e_app_role.endswith('_app')").format()
    )
    parity.runpytest_subprocess("--e2e-app-role", "auto").assert_outcomes(passed=1)
    assert admin.fetch("SELECT rolname FROM pg_roles WHERE rolname LIKE 'e2e\\_%\\_app'") == []


def test_nothing_of_a_session_is_left_for_the_next_test(parity: pytest.Pytester) -> None:
    parity.makepyfile(
        """
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        async def test_1_takes_lock_and_sets(db_connection):
            assert await db_connection.scalar(text("SELECT pg_advisory_lock(4242)")) is None
            await db_connection.execute(text("SET statement_timeout = 1234"))

        async def test_2_lock_free_and_settings_back(db_connection, e2e_database_url):
            engine = create_async_engine(e2e_database_url)
            try:
                async with engine.connect() as other:
                    took = await other.scalar(text("SELECT pg_try_advisory_lock(4242)"))
                    await other.scalar(text("SELECT pg_advisory_unlock_all()"))
            finally:
                await engine.dispose()
            assert took is True
            assert await db_connection.scalar(text("SHOW statement_timeout")) == "0"
            # What the app's engine sets at connect time stays.
            assert await db_connection.scalar(text("SHOW application_name")) == "parity-app"
        """
    )
    parity.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_table_altered_in_one_test_is_queried_in_the_next(parity: pytest.Pytester) -> None:
    parity.makepyfile(
        """
        from sqlalchemy import select, text
        from parity_app import Parent

        async def test_1_alters(client, db_session):
            db_session.add(Parent(id=1, name="a"))
            assert (await client.get("/parents")).json() == ["a"]
            assert (await db_session.scalars(select(Parent.name))).all() == ["a"]
            await db_session.execute(text("ALTER TABLE parents ALTER COLUMN name TYPE text"))
            assert (await db_session.scalars(select(Parent.name))).all() == ["a"]
            assert (await client.get("/parents")).json() == ["a"]

        async def test_2_queries(client, db_session):
            db_session.add(Parent(id=2, name="b"))
            assert (await db_session.scalars(select(Parent.name))).all() == ["b"]
            assert (await client.get("/parents")).json() == ["b"]
        """
    )
    parity.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)
