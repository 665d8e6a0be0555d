"""Schemas named by the metadata, E2EConfig(extensions=..., setup_sql=...) in the template."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="schemas_app:app",
        metadata="schemas_app:Base.metadata",
        extensions={extensions!r},
        setup_sql="CREATE FUNCTION app_label(text) RETURNS text LANGUAGE sql "
        "AS $$ SELECT 'INV-' || $1 $$",
    )
"""

TEST = """
from schemas_app import Customer, Invoice

async def test_two_schemas_and_citext(client, db_session):
    customer = Customer(email="Ann@Example.com")
    db_session.add(customer)
    await db_session.flush()
    db_session.add(Invoice(customer_id=customer.id, number="7"))
    response = await client.get("/customers/ann@example.COM/invoices")
    assert response.json() == ["INV-7"]
"""


@pytest.fixture
def schemas(pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.copy_example("real_apps/schemas_app.py")
    pytester.makepyfile(TEST)
    return pytester


def test_schemas_extensions_and_setup_sql_reach_the_template(schemas: pytest.Pytester) -> None:
    schemas.makeconftest(CONFTEST.format(extensions=["citext"]))
    result = schemas.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*schema template e2e_tpl_* built*"])
    again = schemas.runpytest_subprocess()
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*schema template e2e_tpl_* reused*"])


def test_changing_the_extensions_builds_a_new_template(schemas: pytest.Pytester) -> None:
    schemas.makeconftest(CONFTEST.format(extensions=["citext"]))
    first = schemas.runpytest_subprocess()
    first.assert_outcomes(passed=1)
    schemas.makeconftest(CONFTEST.format(extensions=["citext", "pgcrypto"]))
    second = schemas.runpytest_subprocess()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*schema template e2e_tpl_* built*"])


def test_unknown_extension_is_a_clear_error(schemas: pytest.Pytester) -> None:
    schemas.makeconftest(CONFTEST.format(extensions=["no_such_ext"]))
    result = schemas.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*Could not create the extension 'no_such_ext'*The server offers: *citext*"]
    )


SCRIPT_CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="schemas_app:app",
        metadata="schemas_app:Base.metadata",
        extensions=["citext"],
        setup_sql={setup_sql!r},
    )
"""


def test_setup_sql_may_hold_several_statements(schemas: pytest.Pytester) -> None:
    script = (
        "CREATE FUNCTION app_label(text) RETURNS text LANGUAGE sql AS $$ SELECT 'INV-' || $1 $$;\n"
        "COMMENT ON FUNCTION app_label(text) IS 'invoice label; made by setup_sql';\n"
    )
    schemas.makeconftest(SCRIPT_CONFTEST.format(setup_sql=script))
    schemas.makepyfile(
        test_comment="""
        from sqlalchemy import text

        async def test_both_statements_ran(db_session):
            comment = await db_session.scalar(
                text("SELECT obj_description('app_label(text)'::regprocedure)")
            )
            assert comment == "invoice label; made by setup_sql"
        """
    )
    result = schemas.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_a_failing_setup_sql_names_itself_and_the_servers_error(schemas: pytest.Pytester) -> None:
    script = "CREATE SCHEMA billing;\nCREATE TABLE billing.x (id int REFERENCES nowhere);"
    schemas.makeconftest(SCRIPT_CONFTEST.format(setup_sql=script))
    result = schemas.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*running E2EConfig.setup_sql*relation "nowhere" does not exist*'])
