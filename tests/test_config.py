"""Configuration: E2EConfig validation, option precedence and provenance, the header."""

from __future__ import annotations

import pytest

from fastapi_e2e import E2EConfig
from fastapi_e2e.config import DEFAULT_LIFESPAN_TIMEOUT, Setting, resolve_settings
from fastapi_e2e.errors import ConfigError


def test_command_line_beats_environment_beats_ini() -> None:
    settings = resolve_settings(
        cli={"e2e_db_url": "postgresql://cli/db"},
        env={"E2E_DATABASE_URL": "postgresql://env/db"},
        ini={"e2e_db_url": "postgresql://ini/db"},
    )
    assert settings.db_url == Setting("postgresql://cli/db", "command line")
    settings = resolve_settings(
        cli={}, env={"E2E_DATABASE_URL": "postgresql://env/db"}, ini={"e2e_db_url": "x"}
    )
    assert settings.db_url == Setting("postgresql://env/db", "environment")
    settings = resolve_settings(cli={}, env={}, ini={"e2e_db_url": "postgresql://ini/db"})
    assert settings.db_url == Setting("postgresql://ini/db", "ini")


def test_defaults_are_marked_as_defaults() -> None:
    settings = resolve_settings(cli={}, env={}, ini={})
    assert settings.db_url == Setting(None, "default")
    assert settings.lifespan_timeout == Setting(DEFAULT_LIFESPAN_TIMEOUT, "default")


def test_empty_environment_value_is_not_silently_unset() -> None:
    # An empty E2E_DATABASE_URL is a mistake to report, not "use the embedded cluster".
    settings = resolve_settings(cli={}, env={"E2E_DATABASE_URL": ""}, ini={})
    assert settings.db_url == Setting("", "environment")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_bad_lifespan_timeout_names_value_and_source(value: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"e2e_lifespan_timeout from ini is '{value}'|from ini is {value}"
    ):
        resolve_settings(cli={}, env={}, ini={"e2e_lifespan_timeout": value})


def test_lifespan_timeout_zero_in_config_is_rejected_not_ignored() -> None:
    with pytest.raises(ConfigError, match="lifespan_timeout is 0"):
        E2EConfig(app="x:y", lifespan_timeout=0)


def test_metadata_and_alembic_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="both metadata and alembic_ini"):
        E2EConfig(app="x:y", metadata="m:md", alembic_ini="alembic.ini")


def test_sessionmakers_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match=r"sessionmakers=\['app.db:Session'\]"):
        E2EConfig(app="x:y", sessionmakers="app.db:Session")


def test_empty_db_url_from_environment_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_DATABASE_URL", "")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the database URL from environment*not a PostgreSQL URL*"])


def test_ini_lifespan_timeout_shows_in_header(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2E_DATABASE_URL", raising=False)
    pytester.makeini("[pytest]\ne2e_lifespan_timeout = 2.5\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "fastapi-e2e: database: embedded PostgreSQL cluster (default); "
            "lifespan timeout: 2.5 s (ini)*"
        ]
    )


def test_plugin_costs_nothing_for_tests_that_do_not_use_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No e2e_config and PostgreSQL unreachable: tests that use no harness fixture pass.
    monkeypatch.setenv("PG_BINDIR", "/nonexistent")
    pytester.makepyfile("async def test_async():\n    pass\n\ndef test_sync():\n    pass\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_summary_says_what_was_started_and_how_long_it_took(shop: pytest.Pytester) -> None:
    shop.makepyfile("async def test_ok(client):\n    pass\n")
    result = shop.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "fastapi-e2e: postgresql+asyncpg://*; schema template e2e_tpl_* *; test database "
            "e2e_* via postgresql+asyncpg; db_session: the app's async_sessionmaker "
            "(AsyncSession); started in * s (server * s, schema key * s, template * s, "
            "clone * s, app * s)"
        ]
    )


def test_trace_defaults_to_off_and_accepts_the_three_modes() -> None:
    assert resolve_settings(cli={}, env={}, ini={}).trace == Setting("off", "default")
    for mode in ("off", "retain-on-failure", "on"):
        settings = resolve_settings(cli={"e2e_trace": mode}, env={}, ini={})
        assert settings.trace == Setting(mode, "command line")


def test_bad_trace_mode_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="one of off, retain-on-failure, on"):
        resolve_settings(cli={}, env={}, ini={"e2e_trace": "sometimes"})


def test_strict_server_errors_from_ini_is_parsed_and_false_stays_false() -> None:
    settings = resolve_settings(cli={}, env={}, ini={"e2e_strict_server_errors": "no"})
    assert settings.strict_server_errors == Setting(False, "ini")
    settings = resolve_settings(cli={"e2e_strict_server_errors": True}, env={}, ini={})
    assert settings.strict_server_errors == Setting(True, "command line")
