"""Behaviour: one pinned event loop.

Async tests, async user fixtures, the harness's fixtures and the app's lifespan all
run on pytest-asyncio's session loop, whatever the user's asyncio mode and default
loop scopes; a test that explicitly asks for another loop while using harness
fixtures is refused at setup with a message saying why.
"""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST

LOOP_APP_CONFTEST = CONFTEST.format(extra="").replace(
    '"shop:create_app"', '"lifespan_apps:create_loop_app"'
)

AUTO_MODE_FUNCTION_LOOPS = """
[pytest]
asyncio_mode = auto
asyncio_default_test_loop_scope = function
asyncio_default_fixture_loop_scope = function
"""


def test_unmarked_async_tests_run_in_strict_mode(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from shop import Thing

        async def test_no_marker(client, db_session):
            db_session.add(Thing(name="unmarked"))
            await db_session.flush()
            response = await client.get("/things")
            assert response.json() == ["unmarked"]
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    # Python 3.10 prints the enum as "strict", later ones as "Mode.STRICT".
    result.stdout.re_match_lines([r".*mode=(Mode\.STRICT|strict)\b.*"])


def test_auto_mode_with_function_loop_defaults_uses_one_loop(shop: pytest.Pytester) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(LOOP_APP_CONFTEST)
    shop.makeini(AUTO_MODE_FUNCTION_LOOPS)
    shop.makepyfile(
        """
        import asyncio
        from shop import Thing

        LOOPS = []

        async def test_1(client, db_session):
            LOOPS.append(id(asyncio.get_running_loop()))
            db_session.add(Thing(name="one"))
            assert (await client.get("/things")).json() == ["one"]

        async def test_2(client):
            LOOPS.append(id(asyncio.get_running_loop()))
            assert (await client.get("/things")).json() == []

        async def test_3(client):
            LOOPS.append(id(asyncio.get_running_loop()))
            loops = (await client.get("/loop")).json()
            assert len(LOOPS) == 3
            assert {*LOOPS, loops["lifespan"], loops["request"]} == {LOOPS[0]}
        """
    )
    result = shop.runpytest_subprocess()
    result.stdout.re_match_lines(
        [r".*mode=(Mode\.AUTO|auto)\b.*asyncio_default_fixture_loop_scope=function.*"]
    )
    result.assert_outcomes(passed=3)


def test_function_loop_scope_marker_with_client_fails_at_setup(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio(loop_scope="function")
        async def test_own_loop(client):
            await client.get("/things")
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_own_loop*",
            "*test_own_loop uses harness fixtures*asks to run in a function-scoped event loop*",
        ]
    )
    result.stdout.fnmatch_lines(["*use @pytest.mark.asyncio(loop_scope='session')*"])


def test_loop_scope_error_names_only_the_fixtures_the_test_requested(
    shop: pytest.Pytester,
) -> None:
    shop.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio(loop_scope="module")
        async def test_own_loop(client, db_session):
            await client.get("/things")
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_own_loop uses harness fixtures (client, db_session) but asks to run in a "
            "module-scoped event loop*"
        ]
    )


def test_anyio_marked_test_runs_with_client_and_db_session(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        CONFTEST.format(extra="")
        + """

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    shop.makepyfile(
        """
        import pytest
        from shop import Thing

        @pytest.mark.anyio
        async def test_fastapi_docs_style(client, db_session):
            db_session.add(Thing(name="via anyio"))
            await db_session.flush()
            assert (await client.get("/things")).json() == ["via anyio"]
            assert (await client.post("/things", params={"name": "posted"})).status_code == 201
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "decorator"),
    [
        pytest.param("[pytest]\nasyncio_mode = auto\n", "pytest.fixture", id="auto-plain-fixture"),
        pytest.param("[pytest]\nasyncio_mode = strict\n", "pytest_asyncio.fixture", id="strict"),
    ],
)
def test_user_async_fixture_seeds_rows_visible_to_requests(
    shop: pytest.Pytester, ini: str, decorator: str
) -> None:
    shop.makeini(ini)
    shop.makepyfile(
        f"""
        import pytest
        import pytest_asyncio
        from shop import Thing

        @{decorator}
        async def seeded(db_session):
            db_session.add(Thing(name="from fixture"))
            await db_session.flush()
            return "from fixture"

        @{decorator}
        async def seeded_by_generator(db_session, seeded):
            db_session.add(Thing(name="from generator"))
            await db_session.flush()
            yield "from generator"

        async def test_seed_is_visible(client, seeded, seeded_by_generator):
            assert (await client.get("/things")).json() == [seeded, seeded_by_generator]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_async_test_without_harness_fixtures_runs_without_config(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No e2e_config anywhere and no database URL: the harness must stay out of the way.
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    pytester.makepyfile(
        """
        import asyncio

        async def test_plain():
            await asyncio.sleep(0)
            assert asyncio.get_running_loop().is_running()
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_anyio_backend_options_are_refused_with_the_reason(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        CONFTEST.format(extra="")
        + """

@pytest.fixture
def anyio_backend():
    return ("asyncio", {"use_uvloop": True})
"""
    )
    shop.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        async def test_wants_uvloop(client):
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*asks anyio for backend options {'use_uvloop': True}*event_loop_policy*"]
    )


def test_uvloop_policy_is_the_loop_the_harness_runs_on(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        CONFTEST.format(extra="")
        + """

import uvloop

@pytest.fixture(scope="session")
def event_loop_policy():
    return uvloop.EventLoopPolicy()
"""
    )
    shop.makepyfile(
        """
        import asyncio

        async def test_on_uvloop(client, db_session):
            assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
            assert (await client.post("/things", params={"name": "fast"})).status_code == 201
        """
    )
    result = shop.runpytest_subprocess("-W", "ignore::DeprecationWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*via postgresql+asyncpg on event loop uvloop.Loop*"])
