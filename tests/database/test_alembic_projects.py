"""Alembic as projects run it: the project's own env.py, unchanged, into the template."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(app="notes_app:app", alembic_ini="alembic.ini"{extra})
"""

TESTS = """
async def test_migrated_table_is_used(client):
    assert (await client.post("/notes", params={"body": "hi"})).status_code == 201
    assert (await client.get("/notes")).json() == ["hi"]

async def test_starts_empty(client):
    assert (await client.get("/notes")).json() == []
"""

ENV_WITH_APP_ENGINE = """
import asyncio
from alembic import context
from notes_app import Base, engine

def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()

async def run_async_migrations():
    async with engine.connect() as connection:  # the app's own engine
        await connection.run_sync(do_run_migrations)
    await engine.dispose()

asyncio.run(run_async_migrations())
"""

ENV_SET_MAIN_OPTION = """
import asyncio, os
from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config
from notes_app import Base

config = context.config
config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"])

def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()

async def run_async_migrations():
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()

asyncio.run(run_async_migrations())
"""

ENV_SYNC_ENGINE = """
from alembic import context
from sqlalchemy import create_engine
from notes_app import Base, settings

url = settings.database_url.replace("+asyncpg", "+psycopg")
with create_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
"""

ENV_SYNC_ENGINE_FROM_FRESH_SETTINGS = """
from alembic import context
from sqlalchemy import create_engine
from notes_app import Base, Settings

url = Settings().database_url.replace("+asyncpg", "+psycopg")
with create_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
"""

INI_SPLIT_SETTINGS = """
[tool.pytest.ini_options]
e2e_app = "notes_app:app"
e2e_alembic_ini = "alembic.ini"
e2e_env = [
    "POSTGRES_HOST={host}", "POSTGRES_PORT={port}", "POSTGRES_USER={user}",
    "POSTGRES_PASSWORD={password}", "POSTGRES_DB={database}",
]
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The notes project on the embedded cluster, as a new user has it."""
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    for name in ("DATABASE_URL", "POSTGRES_HOST", "POSTGRES_DB"):
        monkeypatch.delenv(name, raising=False)
    pytester.copy_example("alembic_project")
    pytester.makepyfile(test_notes=TESTS)
    return pytester


def test_env_py_building_its_url_from_settings(project: pytest.Pytester) -> None:
    project.makeconftest(CONFTEST.format(extra=""))
    result = project.runpytest_subprocess("--random-order")
    result.assert_outcomes(passed=2)


def test_env_py_using_the_apps_engine(project: pytest.Pytester) -> None:
    (project.path / "migrations" / "env.py").write_text(ENV_WITH_APP_ENGINE)
    project.makeconftest(CONFTEST.format(extra=""))
    project.runpytest_subprocess("--random-order").assert_outcomes(passed=2)


def test_env_py_calling_set_main_option(project: pytest.Pytester) -> None:
    (project.path / "migrations" / "env.py").write_text(ENV_SET_MAIN_OPTION)
    project.makeconftest(CONFTEST.format(extra=', database_url_env="DATABASE_URL"'))
    project.runpytest_subprocess("--random-order").assert_outcomes(passed=2)


def test_env_py_that_cannot_be_redirected_says_so(project: pytest.Pytester) -> None:
    (project.path / "migrations" / "env.py").write_text(ENV_SYNC_ENGINE)
    project.makeconftest(CONFTEST.format(extra=""))
    result = project.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*alembic upgrade head (alembic.ini) failed: the project's env.py connected with "
            "an engine the harness cannot redirect*postgresql+psycopg*'host': 'db'*"
            "failed to resolve host 'db'*Fix: run the migrations through an async engine*"
        ]
    )
    assert "site-packages" not in result.stdout.str()  # no pool frames


def test_sync_env_py_reading_the_settings_gets_the_template_over_tcp(
    project: pytest.Pytester,
) -> None:
    # No redirection possible for a sync engine: the variables it reads name the
    # template while it migrates, and the cluster takes the password on 127.0.0.1.
    (project.path / "migrations" / "env.py").write_text(ENV_SYNC_ENGINE_FROM_FRESH_SETTINGS)
    project.makepyprojecttoml(INI_SPLIT_SETTINGS)
    project.runpytest_subprocess("--random-order").assert_outcomes(passed=2)


def test_ini_alembic_path_is_relative_to_the_ini_file(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(INI_SPLIT_SETTINGS)
    project.mkdir("tests")
    (project.path / "test_notes.py").rename(project.path / "tests" / "test_notes.py")
    result = project.runpytest_subprocess("tests", "--rootdir", str(project.path))
    result.assert_outcomes(passed=2)
