"""Settings as projects have them: split variables read at import (a test module imports
the app at collection), set from ini keys before any conftest or test module loads."""

from __future__ import annotations

import pytest

INI = """
[tool.pytest.ini_options]
e2e_app = "splitenv_app:app"
e2e_metadata = "splitenv_app:Base.metadata"
e2e_env = [
    "DATABASE__HOSTNAME={host}",
    "DATABASE__PORT={port}",
    "DATABASE__USERNAME={user}",
    "DATABASE__PASSWORD={password}",
    "DATABASE__DB={database}",
]
"""

# What a developer's .env holds: the docker-compose database. The test values win.
DOTENV = """
DATABASE__HOSTNAME=db
DATABASE__PORT=5432
DATABASE__USERNAME=app
DATABASE__PASSWORD=changethis
DATABASE__DB=app
"""

TESTS = """
import os

import asyncpg
import pytest
from sqlalchemy import text

from splitenv_app import Article, get_settings  # at collection, before any test runs


def test_settings_read_the_test_values_at_import():
    database = get_settings().database
    assert database.hostname == "127.0.0.1"
    assert database.port == int(os.environ["DATABASE__PORT"]) != 5432
    assert database.db.startswith("e2e_")
    assert database.password.get_secret_value() not in ("", "changethis")


async def test_app_and_test_share_the_transaction(client, db_session):
    db_session.add(Article(title="seeded"))
    await db_session.flush()
    assert (await client.post("/articles", json={"title": "posted"})).status_code == 201
    assert (await client.get("/articles")).json() == ["seeded", "posted"]
    name = await db_session.scalar(text("SELECT current_database()"))
    assert name == get_settings().database.db


async def test_starts_empty(client):
    assert (await client.get("/articles")).json() == []


async def test_the_settings_reach_the_cluster_over_tcp_with_the_password(e2e_database_url):
    database = get_settings().database
    connection = await asyncpg.connect(
        host=database.hostname, port=database.port, user=database.username,
        password=database.password.get_secret_value(), database=database.db,
    )
    try:
        assert await connection.fetchval("SELECT current_database()") == database.db
        assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await connection.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=database.hostname, port=database.port, user=database.username,
            password="wrong", database=database.db,
        )
"""


@pytest.fixture
def splitenv(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    for part in ("HOSTNAME", "PORT", "USERNAME", "PASSWORD", "DB"):
        monkeypatch.delenv(f"DATABASE__{part}", raising=False)
    pytester.copy_example("real_apps/splitenv_app.py")
    (pytester.path / ".env").write_text(DOTENV)
    return pytester


def test_ini_keys_alone_set_up_an_app_imported_at_collection(splitenv: pytest.Pytester) -> None:
    splitenv.makepyprojecttoml(INI)
    splitenv.makepyfile(test_articles=TESTS)
    result = splitenv.runpytest_subprocess("--random-order")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "fastapi-e2e: ini keys: e2e_app, e2e_metadata, e2e_env; set before the conftests: "
            "DATABASE__HOSTNAME, DATABASE__PORT, DATABASE__USERNAME, DATABASE__PASSWORD, "
            "DATABASE__DB"
        ]
    )


def test_without_the_ini_keys_the_import_fails_at_collection(splitenv: pytest.Pytester) -> None:
    # The same project with E2EConfig(env=...) only: too late for a test module that
    # imports the app (the README says so); .env's docker host is what it would read.
    splitenv.makeconftest(
        """
        import pytest
        from fastapi_e2e import E2EConfig

        @pytest.fixture(scope="session")
        def e2e_config():
            return E2EConfig(app="splitenv_app:app", metadata="splitenv_app:Base.metadata",
                             env={"DATABASE__HOSTNAME": "{host}"})
        """
    )
    splitenv.makepyfile(
        test_late="""
        from splitenv_app import get_settings

        def test_reads_dotenv():
            assert get_settings().database.hostname == "db"
        """
    )
    splitenv.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_fixture_form_sets_the_variables_when_the_run_starts(
    splitenv: pytest.Pytester,
) -> None:
    splitenv.makeconftest(
        """
        import pytest
        from fastapi_e2e import E2EConfig

        @pytest.fixture(scope="session")
        def e2e_config():
            return E2EConfig(
                app="splitenv_app:app",
                metadata="splitenv_app:Base.metadata",
                env={"DATABASE__HOSTNAME": "{host}", "DATABASE__PORT": "{port}",
                     "DATABASE__DB": "{database}", "APP_DSN": "{driver}://{user}@{host}/x"},
            )
        """
    )
    splitenv.makepyfile(
        test_late="""
        import os

        async def test_imported_by_the_harness(client):
            from splitenv_app import get_settings

            assert (await client.get("/articles")).json() == []
            database = get_settings().database
            port = int(os.environ["DATABASE__PORT"])
            assert (database.hostname, database.port) == ("127.0.0.1", port)
            assert database.username == "app"  # from .env: not in the templates
            assert os.environ["APP_DSN"] == "postgresql+asyncpg://postgres@127.0.0.1/x"
        """
    )
    splitenv.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_conftest_config_takes_what_it_leaves_unset_from_the_ini(
    splitenv: pytest.Pytester,
) -> None:
    splitenv.makepyprojecttoml(INI + 'e2e_base_url = "http://api.example.test/v9"\n')
    splitenv.makeconftest(
        """
        import pytest
        from fastapi_e2e import E2EConfig

        @pytest.fixture(scope="session")
        def e2e_config():
            return E2EConfig(app="splitenv_app:app", headers={"x-from": "conftest"})
        """
    )
    splitenv.makepyfile(
        test_merge="""
        async def test_merged(client):
            assert str(client.base_url) == "http://api.example.test/v9/"
            assert client.headers["x-from"] == "conftest"
            response = await client.get("/articles")  # the ini's metadata built the table
            assert response.status_code == 404  # under /v9 the app has no such route
        """
    )
    splitenv.runpytest_subprocess().assert_outcomes(passed=1)


def test_xdist_workers_share_the_cluster_port_and_password(splitenv: pytest.Pytester) -> None:
    splitenv.makepyprojecttoml(INI)
    splitenv.makepyfile(test_articles=TESTS)
    splitenv.makepyfile(
        test_workers="""
        import os

        def test_each_worker_has_its_own_database():
            assert os.environ["DATABASE__DB"].endswith("_" + os.environ["PYTEST_XDIST_WORKER"])
        """
    )
    result = splitenv.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=5)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("DATABASE__PORT={prot}", "*{prot} is not a field of the address*"),
        ("DATABASE__PORT", "*each line must be NAME=template*"),
        ("DATABASE__PORT={port:d}", "*{port} takes no format spec*"),
        ("DATABASE__PORT={port", "*not a valid template*"),
    ],
)
def test_a_bad_ini_template_is_a_usage_error(
    splitenv: pytest.Pytester, line: str, expected: str
) -> None:
    splitenv.makepyprojecttoml(f'[tool.pytest.ini_options]\ne2e_env = ["{line}"]\n')
    splitenv.makepyfile("def test_x():\n    pass\n")
    result = splitenv.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected + "fields url, driver, host, port*"])
