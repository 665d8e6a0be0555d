"""Behaviours: the app and its lifespan; unhandled exceptions in the app.

The app is built once per run from whatever form E2EConfig.app takes, its lifespan
runs once (with a timeout), each request gets its own copy of the lifespan state,
dependency overrides a test makes are undone after it, configuration mistakes end
in a clear setup error instead of a hang, and exceptions the app raises come back
as 500 responses whose tracebacks are shown in the report of a failing test.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from fastapi_e2e import errors
from tests.conftest import CONFTEST

# Inner-run timeout: a harness that hangs fails the outer test instead of the suite.
NO_HANG = 60


def conftest_with_app(app: str, extra: str = "", imports: str = "") -> str:
    """The shop conftest with E2EConfig.app replaced by the Python expression ``app``."""
    return imports + CONFTEST.format(extra=extra).replace('"shop:create_app"', app)


# --- lifespan and app building ----------------------------------------------------


def test_lifespan_ran_before_the_first_request(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_greeting(client):
            response = await client.get("/greeting")
            assert response.status_code == 200
            assert response.json()["greeting"] == "hello from lifespan"
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_lifespan_state_is_copied_per_request(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_1_two_requests(client):
            first = (await client.get("/greeting")).json()
            second = (await client.get("/greeting")).json()
            assert first == {"greeting": "hello from lifespan", "scribble": None}
            assert second == {"greeting": "hello from lifespan", "scribble": None}

        async def test_2_next_test(client):
            assert (await client.get("/greeting")).json()["scribble"] is None
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=2)


def test_app_is_built_once_per_run(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_a="""
        async def test_a1(client):
            assert (await client.get("/things")).status_code == 200

        async def test_a2(client, app):
            assert (await client.get("/greeting")).status_code == 200
        """,
        test_b="""
        import shop

        async def test_b1(client):
            assert (await client.post("/things", params={"name": "b"})).status_code == 201

        async def test_b2(db_session):
            pass

        def test_z_built_once():
            assert shop.BUILDS["count"] == 1
        """,
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=5)


@pytest.mark.parametrize(
    "app",
    [
        pytest.param("shop.create_app()", id="instance"),
        pytest.param("shop.create_app", id="factory"),
        pytest.param("lifespan_apps.create_app_async", id="async-factory"),
        pytest.param('"shop:create_app"', id="import-string-to-factory"),
        pytest.param('"myapp:app"', id="import-string-to-instance"),
        pytest.param('"lifespan_apps:create_app_async"', id="import-string-to-async-factory"),
    ],
)
def test_app_forms_all_work(shop: pytest.Pytester, app: str) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(conftest_with_app(app, imports="import shop\nimport lifespan_apps\n"))
    shop.makepyfile(
        myapp="""
        import shop

        app = shop.create_app()
        """,
        test_forms="""
        from sqlalchemy import select
        import shop
        from shop import Thing

        async def test_app_serves_with_lifespan_and_database(client, db_session):
            assert (await client.get("/greeting")).json()["greeting"] == "hello from lifespan"
            assert (await client.post("/things", params={"name": "x"})).status_code == 201
            assert (await db_session.scalars(select(Thing.name))).all() == ["x"]
            assert shop.BUILDS["count"] == 1
        """,
    )
    shop.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("app", "shown"),
    [
        pytest.param('"shop:BUILDS"', "{'count': 0}", id="import-string-to-a-dict"),
        pytest.param(
            "lifespan_apps.not_an_app_factory",
            "<function not_an_app_factory at 0x*>",
            id="factory-returning-a-dict",
        ),
    ],
)
def test_config_app_that_is_not_an_app_is_a_clear_error(
    shop: pytest.Pytester, app: str, shown: str
) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(conftest_with_app(app, imports="import lifespan_apps\n"))
    shop.makepyfile(
        """
        async def test_1(client):
            pass

        async def test_2(db_session):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=2)
    expected = errors.NOT_AN_APP.replace("{value!r}", shown)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_1*", expected])
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_2*", expected + " (the same error as at*"]
    )


@pytest.mark.parametrize(
    ("app", "cause"),
    [
        pytest.param("no_such_module:app", "No module named 'no_such_module'", id="module"),
        pytest.param(
            "shop:no_such_app", "module 'shop' has no attribute 'no_such_app'", id="attribute"
        ),
        pytest.param("shop.create_app", "no ':' between module and attribute", id="no-colon"),
    ],
)
def test_bad_import_string_is_a_clear_error(shop: pytest.Pytester, app: str, cause: str) -> None:
    shop.makeconftest(conftest_with_app(repr(app)))
    shop.makepyfile(
        """
        async def test_1(client):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    expected = errors.IMPORT_FAILED.format(field="app", value=app, cause=cause)
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_config_error_is_reported_once_not_as_an_exception_chain(shop: pytest.Pytester) -> None:
    shop.makeconftest(conftest_with_app('"no_such_module:app"'))
    shop.makepyfile(
        """
        async def test_1(client):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    message = errors.IMPORT_FAILED.format(
        field="app", value="no_such_module:app", cause="No module named 'no_such_module'"
    )
    assert result.stdout.lines.count(message) == 1, result.stdout.str()
    result.stdout.no_fnmatch_line("During handling of the above exception*")


def test_lifespan_startup_error_fails_every_test_using_client(shop: pytest.Pytester) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(conftest_with_app('"lifespan_apps:create_failing_app"'))
    shop.makepyfile(
        """
        async def test_1(client):
            pass

        async def test_2(client):
            pass

        def test_without_harness():
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=2, passed=1)
    line = (
        "*The app's lifespan startup failed: RuntimeError: the cache server is on fire. "
        "The harness runs the lifespan once per test session*"
    )
    result.stdout.fnmatch_lines(["*ERROR at setup of test_1*", line])
    result.stdout.fnmatch_lines(["*ERROR at setup of test_2*", line])


def test_lifespan_startup_error_shows_the_startup_traceback(shop: pytest.Pytester) -> None:
    # LIFESPAN_FAILED ends "fix the error in the app's startup code (its traceback is
    # above)": the report must show where in the lifespan the exception was raised.
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(conftest_with_app('"lifespan_apps:create_failing_app"'))
    shop.makepyfile(
        """
        async def test_1(client):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "The app's lifespan startup failed: RuntimeError: the cache server is on fire.*"
            "(its traceback follows).",
            "Caused by:",
            '*File "*lifespan_apps.py", line *, in lifespan',
            "*RuntimeError: the cache server is on fire",
        ]
    )


def test_hanging_lifespan_times_out_per_config(shop: pytest.Pytester) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(
        conftest_with_app('"lifespan_apps:create_hanging_app"', extra="lifespan_timeout=0.5,")
    )
    shop.makepyfile(
        """
        async def test_1(client):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*The app's lifespan startup did not finish within 0.5 s*"])


def test_hanging_lifespan_times_out_per_command_line(shop: pytest.Pytester) -> None:
    shop.copy_example("lifespan_apps.py")
    shop.makeconftest(conftest_with_app('"lifespan_apps:create_hanging_app"'))
    shop.makepyfile(
        """
        async def test_1(client):
            pass
        """
    )
    result = shop.runpytest_subprocess("--e2e-lifespan-timeout=0.5", timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "fastapi-e2e: *lifespan timeout: 0.5 s (command line)*",
            "*The app's lifespan startup did not finish within 0.5 s*",
        ]
    )


def test_non_numeric_lifespan_timeout_option_is_a_usage_error(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        def test_1():
            pass
        """
    )
    result = shop.runpytest_subprocess("--e2e-lifespan-timeout=abc", timeout=NO_HANG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*e2e_lifespan_timeout from command line is 'abc'; it must be a number of seconds*"]
    )


def test_dependency_overrides_set_by_a_test_are_gone_in_the_next(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from fastapi import HTTPException
        from shop import get_maker, get_session

        def teapot():
            raise HTTPException(418, "overridden by the test")

        async def test_1_overrides(app, client):
            app.dependency_overrides[get_session] = teapot
            app.dependency_overrides[get_maker] = teapot
            assert (await client.get("/things")).status_code == 418
            assert (await client.get("/count-via-maker")).status_code == 418

        async def test_2_overrides_gone(app, client):
            assert get_maker not in app.dependency_overrides
            assert app.dependency_overrides.get(get_session) is not teapot
            assert (await client.get("/things")).json() == []
            assert (await client.get("/count-via-maker")).json() == 0
        """
    )
    shop.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_missing_e2e_config_error_names_the_test_and_the_fixture_it_used(
    shop: pytest.Pytester,
) -> None:
    shop.makeconftest("")
    shop.makepyfile(
        test_needs_config="""
        async def test_uses_client(client, db_session):
            pass
        """
    )
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_needs_config.py::test_uses_client uses the harness fixture(s) "
            "client, db_session, but neither an e2e_config fixture nor the e2e_app ini "
            "key is set*",
            '*e2e_app = "myapp.main:app"*',
        ]
    )
    # The message stands alone: no traceback through pytest-asyncio or the plugin.
    assert "pytest_asyncio" not in result.stdout.str()


def test_report_header_names_the_database_and_its_source(
    shop: pytest.Pytester, server_url: str
) -> None:
    shop.makepyfile(
        """
        def test_1():
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    shown = make_url(server_url).set(drivername="postgresql+asyncpg")
    masked = shown.render_as_string(hide_password=True)
    result.stdout.fnmatch_lines([f"fastapi-e2e: database: {masked} (from environment);*"])


def test_report_header_masks_the_database_password(
    shop: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(server_url).set(password="s3cret-pw")
    monkeypatch.setenv("E2E_DATABASE_URL", url.render_as_string(hide_password=False))
    shop.makepyfile(
        """
        def test_1():
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.stdout.fnmatch_lines(["fastapi-e2e: database: *:***@* (from environment);*"])
    assert "s3cret-pw" not in result.stdout.str() + result.stderr.str()


# --- unhandled exceptions -------------------------------------------------------


def test_unhandled_exception_is_a_500_the_test_can_assert_on(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_boom(client):
            response = await client.get("/boom")
            assert response.status_code == 500
            assert response.text == "Internal Server Error"
            # the app keeps serving after the exception
            assert (await client.get("/things")).status_code == 200
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*fastapi-e2e: requests*")


def test_failing_test_shows_the_server_traceback(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        async def test_boom(client):
            response = await client.get("/boom")
            assert response.status_code == 200
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- fastapi-e2e: requests, server exceptions and SQL -*",
            "[[]1] GET http://testserver/boom -> 500 Internal Server Error in * ms",
            "    server exception (unhandled: it propagated out of the app):",
            '*File "*shop.py", line *, in boom',
            "*ValueError: kaboom from the server",
        ]
    )


def test_e2e_config_of_the_wrong_type_is_a_clear_error(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def e2e_config():
            return {"app": "shop:create_app"}
        """
    )
    shop.makepyfile("async def test_uses_client(client):\n    pass\n")
    result = shop.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*The e2e_config fixture returned {'app': 'shop:create_app'}*"])
    assert "pytest_asyncio" not in result.stdout.str()
