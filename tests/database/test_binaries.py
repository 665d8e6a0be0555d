"""Behaviour 1 (part): finding the PostgreSQL server binaries, and the error when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastapi_e2e.database import binaries
from fastapi_e2e.errors import PostgresNotFoundError


def test_finds_an_installed_postgres() -> None:
    found = binaries.find_binaries()
    assert found.initdb.name == "initdb"
    assert found.postgres.name == "postgres"
    assert found.initdb.parent == found.postgres.parent == found.bindir


def test_explicit_bindir_wins(tmp_path: Path) -> None:
    real = binaries.find_binaries().bindir
    assert binaries.find_binaries(real).bindir == real


def test_explicit_bindir_without_binaries_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "initdb").write_text("")
    with pytest.raises(PostgresNotFoundError, match=r"does not contain postgres"):
        binaries.find_binaries(tmp_path, source="PG_BINDIR")


def test_newest_version_is_searched_first() -> None:
    paths = [
        "/usr/lib/postgresql/13/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/9/bin",
    ]
    assert sorted(paths, key=binaries._version_key)[0].endswith("/16/bin")


def test_no_binaries_is_a_usage_error_naming_three_fixes(
    shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("E2E_DATABASE_URL")
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    shop.makepyfile(
        """
        async def test_needs_db(client):
            pass

        async def test_also_needs_db(db_session):
            pass
        """
    )
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*PG_BINDIR/e2e_pg_bindir (environment) points at '{tmp_path}'*"])


def test_empty_search_gives_the_install_env_and_docker_fixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binaries, "candidate_dirs", lambda: [Path("/nowhere/bin")])
    with pytest.raises(PostgresNotFoundError) as info:
        binaries.find_binaries()
    message = str(info.value)
    assert "/nowhere/bin" in message
    assert "install PostgreSQL" in message
    assert "E2E_DATABASE_URL" in message
    assert "docker compose up -d db" in message
