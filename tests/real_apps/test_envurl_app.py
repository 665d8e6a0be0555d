"""The module-level engine from DATABASE_URL, and what a user's code does to connections:
cancelled queries, swallowed errors, fixtures that seed through the app."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="envurl_app:app", metadata="envurl_app:Base.metadata", database_url_env="DATABASE_URL"
    )
"""


@pytest.fixture
def envurl(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.copy_example("real_apps/envurl_app.py")
    pytester.makeconftest(CONFTEST)
    return pytester


def test_module_level_engine_from_the_env_url_is_pinned(envurl: pytest.Pytester) -> None:
    envurl.makepyfile(
        """
        async def test_both_ways(client, db_session):
            from envurl_app import Item  # imported by the harness, after DATABASE_URL is set

            db_session.add(Item(name="seeded"))
            await db_session.flush()
            assert (await client.post("/items", params={"name": "a"})).status_code == 201
            assert (await client.get("/items")).json() == ["seeded", "a"]

        async def test_starts_empty(client):
            assert (await client.get("/items")).json() == []
        """
    )
    envurl.runpytest_subprocess("--random-order").assert_outcomes(passed=2)


def test_cancelled_queries_leave_the_test_usable(envurl: pytest.Pytester) -> None:
    envurl.makepyfile(
        """
        import httpx
        import pytest
        from sqlalchemy import select

        async def test_client_timeout(client, db_session):
            from envurl_app import Item

            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow", timeout=0.3)
            assert (await client.post("/items", params={"name": "after"})).status_code == 201
            assert (await db_session.scalars(select(Item.name))).all() == ["after"]

        async def test_apps_own_deadline(client):
            assert (await client.get("/report")).json() == {"report": "unavailable"}
            assert (await client.post("/items", params={"name": "next"})).status_code == 201
            assert (await client.get("/items")).json() == ["next"]
        """
    )
    envurl.runpytest_subprocess().assert_outcomes(passed=2)


def test_commit_after_a_swallowed_error_rolls_back_quietly(envurl: pytest.Pytester) -> None:
    envurl.makepyfile(
        """
        async def test_duplicate_ignored(client, db_session):
            from envurl_app import Item

            db_session.add(Item(name="dup"))
            await db_session.flush()
            assert (await client.post("/items/try", params={"name": "dup"})).status_code == 200
            assert (await client.post("/items/try", params={"name": "new"})).status_code == 200
            assert (await client.get("/items")).json() == ["dup", "new"]
        """
    )
    envurl.runpytest_subprocess().assert_outcomes(passed=1)


def test_user_fixture_listed_first_seeds_inside_the_test(envurl: pytest.Pytester) -> None:
    envurl.makepyfile(
        """
        import pytest_asyncio

        @pytest_asyncio.fixture
        async def seeded():
            import envurl_app

            async with envurl_app.SessionLocal() as session:
                session.add(envurl_app.Item(name="from fixture"))
                await session.commit()

        async def test_1_sees_the_seed(seeded, client):
            assert (await client.get("/items")).json() == ["from fixture"]

        async def test_2_does_not(client):
            assert (await client.get("/items")).json() == []
        """
    )
    envurl.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_test_code_commit_inside_an_app_session_it_opened_is_kept(
    envurl: pytest.Pytester,
) -> None:
    envurl.makepyfile(
        """
        from sqlalchemy import func, select

        async def test_nested(db_session):
            import envurl_app

            async with envurl_app.SessionLocal() as app_session:
                await app_session.execute(select(envurl_app.Item))
                db_session.add(envurl_app.Item(name="inside"))
                await db_session.commit()
            count = await db_session.scalar(select(func.count()).select_from(envurl_app.Item))
            assert count == 1
        """
    )
    envurl.runpytest_subprocess().assert_outcomes(passed=1)
