"""Behaviours 2 and 3: an existing server (E2E_DATABASE_URL / --e2e-db-url), the
databases the harness creates there, and the errors for bad servers or credentials."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CONFTEST, Admin

SENTINEL_DB = "precious"


@pytest.fixture
def sentinel(admin: Admin) -> None:
    """A database of somebody else's on the server, with data in it."""
    admin.execute(f"DROP DATABASE IF EXISTS {SENTINEL_DB}")
    admin.execute(f"CREATE DATABASE {SENTINEL_DB}")
    admin.execute(
        "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('mine')", database=SENTINEL_DB
    )


def test_creates_its_own_commented_databases_and_drops_only_those(
    shop: pytest.Pytester, admin: Admin, sentinel: None
) -> None:
    before = {r["datname"] for r in admin.fetch("SELECT datname FROM pg_database")}
    shop.makepyfile(
        """
        import pathlib
        from sqlalchemy import text

        async def test_where_am_i(db_connection, e2e_database_url):
            name = await db_connection.scalar(text("SELECT current_database()"))
            assert name == e2e_database_url.database and name.startswith("e2e_")
            comment = await db_connection.scalar(
                text(
                    "SELECT shobj_description(oid, 'pg_database') "
                    "FROM pg_database WHERE datname = :n"
                ),
                {"n": name},
            )
            assert comment.startswith("pytest-fastapi-e2e test database of pid")
            pathlib.Path("db.txt").write_text(name)
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    after = {r["datname"] for r in admin.fetch("SELECT datname FROM pg_database")}
    # Its test database is gone, nobody else's touched; only its schema template,
    # the cache for the next run, may be new.
    assert {name for name in after - before if not name.startswith("e2e_tpl_")} == set()
    assert before - after == set()
    (template,) = admin.fetch(
        "SELECT datistemplate, datallowconn, shobj_description(oid, 'pg_database') AS comment "
        "FROM pg_database WHERE datname LIKE 'e2e\\_tpl\\_%' ORDER BY oid DESC LIMIT 1"
    )
    assert template["datistemplate"]
    assert not template["datallowconn"]
    assert "schema template (metadata.create_all) built by run" in template["comment"]
    rows = admin.fetch("SELECT v FROM keep", database=SENTINEL_DB)
    assert [r["v"] for r in rows] == ["mine"]


def test_command_line_url_wins_over_environment(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server_url: str
) -> None:
    monkeypatch.setenv("E2E_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/postgres")
    shop.makepyfile("async def test_ok(db_session):\n    pass\n")
    result = shop.runpytest_subprocess(f"--e2e-db-url={server_url}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*(from command line)*"])


def test_template_holds_the_schema_once_and_the_test_db_is_cloned(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from sqlalchemy import text

        async def test_tables(db_connection):
            tables = await db_connection.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            )
            assert tables.all() == ["audit", "things"]
        """
    )
    shop.runpytest_subprocess().assert_outcomes(passed=1)


def test_unreachable_server_fails_fast_with_masked_url(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_DATABASE_URL", "postgresql://app:s3cr3t-pw@127.0.0.1:1/postgres")
    shop.makepyfile("async def test_needs_db(client):\n    pass\n")
    result = shop.runpytest_subprocess(timeout=60)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Could not connect to the PostgreSQL server at postgresql+asyncpg://app:***@127.0.0.1:1/postgres*"
        ]
    )
    assert "s3cr3t-pw" not in result.stdout.str() + result.stderr.str()


def test_unknown_role_is_reported_as_a_login_failure(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, socket_server_url: str
) -> None:
    url = socket_server_url.replace("postgres@", "ghost:pw@", 1)
    monkeypatch.setenv("E2E_DATABASE_URL", url)
    shop.makepyfile("async def test_needs_db(client):\n    pass\n")
    result = shop.runpytest_subprocess(timeout=60)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*rejected the login*role "ghost" does not exist*'])


def test_role_without_createdb_gets_the_grant_to_run(
    shop: pytest.Pytester, admin: Admin, monkeypatch: pytest.MonkeyPatch, socket_server_url: str
) -> None:
    admin.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plain') "
        "THEN CREATE ROLE plain LOGIN NOCREATEDB; END IF; END $$"
    )
    monkeypatch.setenv("E2E_DATABASE_URL", socket_server_url.replace("postgres@", "plain@", 1))
    shop.makepyfile("async def test_needs_db(client):\n    pass\n")
    result = shop.runpytest_subprocess(timeout=60)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*The role 'plain' at * may not create databases*ALTER ROLE plain CREATEDB*"]
    )
    assert admin.e2e_databases() == []


def test_non_postgres_url_is_a_usage_error(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_DATABASE_URL", "mysql://root:hunter2@localhost/db")
    shop.makepyfile("def test_x():\n    pass\n")
    result = shop.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not a PostgreSQL URL*backend 'mysql'*"])
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


def test_schema_error_names_the_step_and_leaves_no_database(
    shop: pytest.Pytester, admin: Admin
) -> None:
    shop.makepyfile(
        broken_models="""
        from sqlalchemy import Column, Integer, MetaData, Table, text
        metadata = MetaData()
        Table("bad", metadata, Column("id", Integer, server_default=text("no_such_function()")))
        """,
        test_schema="async def test_needs_db(client):\n    pass\n",
    )
    shop.makeconftest(
        CONFTEST.format(extra="").replace('"shop:Base.metadata"', '"broken_models:metadata"')
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Building the schema into the template database failed while running "
            "metadata.create_all*no_such_function*"
        ]
    )
    assert admin.e2e_databases() == []


def test_sigterm_mid_run_still_drops_its_databases(shop: pytest.Pytester, admin: Admin) -> None:
    shop.makepyfile(
        """
        import os, signal, asyncio

        async def test_terminated(db_session):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(5)
        """
    )
    result = shop.runpytest_subprocess(timeout=60)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert admin.e2e_databases() == []


# --- concurrent and killed runs on one server ---------------------------------------

FRESH_SCHEMA_CONFTEST = """
import pytest
from sqlalchemy import Column, Integer, MetaData, Table
from fastapi_e2e import E2EConfig

metadata = MetaData()
Table("{table}", metadata, Column("id", Integer, primary_key=True))

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(app="shop:create_app", metadata=metadata, database_url_env="DATABASE_URL")
"""

RECORD_DATABASE = """
import pathlib, time
from sqlalchemy import text

async def test_record(db_connection, e2e_database_url):
    await db_connection.execute(text("INSERT INTO {table} VALUES (1)"))
    time.sleep(0.5)  # overlap with the other run
    count = await db_connection.scalar(text("SELECT count(*) FROM {table}"))
    assert count == 1
    pathlib.Path("db-" + e2e_database_url.database).touch()
"""


def test_concurrent_runs_on_one_server_build_the_template_once_and_do_not_collide(
    shop: pytest.Pytester, admin: Admin
) -> None:
    # A schema no earlier run built, so both runs race to build its template.
    table = f"race_{os.getpid()}_{int(time.time() * 1000)}"
    shop.makeconftest(FRESH_SCHEMA_CONFTEST.format(table=table))
    shop.makepyfile(test_race=RECORD_DATABASE.format(table=table))
    env = {**os.environ, "PYTHONPATH": str(shop.path)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    runs = [
        subprocess.Popen(
            command, cwd=shop.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    verdicts = sorted(
        "built" if " built;" in output else "reused" if " reused;" in output else output
        for output in outputs
    )
    assert verdicts == ["built", "reused"]
    assert len(list(Path(shop.path).glob("db-e2e_*"))) == 2  # two distinct test databases
    assert admin.e2e_databases() == []


def test_databases_of_a_killed_run_are_dropped_by_the_next_run(
    shop: pytest.Pytester, admin: Admin
) -> None:
    shop.makepyfile(
        test_killed="""
        import os, pathlib, signal

        async def test_dies(db_session, e2e_database_url):
            pathlib.Path("orphan.txt").write_text(e2e_database_url.database)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    shop.runpytest_subprocess(timeout=60)
    orphan = (Path(shop.path) / "orphan.txt").read_text()
    assert orphan in admin.e2e_databases()  # nothing could drop it

    (Path(shop.path) / "test_killed.py").unlink()
    shop.makepyfile(test_next="async def test_ok(db_session):\n    pass\n")
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*dropped * stale database(s) of dead runs*"])
    assert orphan not in admin.e2e_databases()
